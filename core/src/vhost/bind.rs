//! Bindings: queue and exchange-to-exchange binds and unbinds.

use std::sync::Arc;

use crate::declare::BindingDeclaration;
use crate::errors::BindError;
use crate::exchange::{Destination, Exchange};
use crate::names::{ConnectionId, ExchangeName, QueueName};

use super::Vhost;

impl Vhost {
    fn source_exchange(&self, name: &ExchangeName) -> Result<Arc<Exchange>, BindError> {
        if name.is_default() {
            return Err(BindError::DefaultExchange);
        }
        self.exchange(name)
            .ok_or_else(|| BindError::SourceNotFound {
                exchange: name.clone(),
                vhost: self.name.clone(),
            })
    }

    fn binding_target(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<Destination, BindError> {
        if to_queue {
            let name = QueueName::new(&binding.destination)
                .map_err(|e| BindError::InvalidName(e.to_string()))?;
            self.queue_for(&name, accessor)?;
            Ok(Destination::Queue(name))
        } else {
            let name = ExchangeName::new(&binding.destination)
                .map_err(|e| BindError::InvalidName(e.to_string()))?;
            if name.is_default() {
                return Err(BindError::DefaultExchange);
            }
            if self.exchange(&name).is_none() {
                return Err(BindError::DestinationNotFound {
                    exchange: name,
                    vhost: self.name.clone(),
                });
            }
            Ok(Destination::Exchange(name))
        }
    }

    fn bind(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<(), BindError> {
        let source = self.source_exchange(&binding.source)?;
        let destination = self.binding_target(binding, to_queue, accessor)?;
        source
            .bind(destination, &binding.routing_key, &binding.arguments)
            .map(|_| ())
            .map_err(|e| BindError::InvalidArgument {
                exchange: binding.source.clone(),
                vhost: self.name.clone(),
                reason: e.to_string(),
            })
    }

    fn unbind(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<bool, BindError> {
        let source = self.source_exchange(&binding.source)?;
        let destination = self.binding_target(binding, to_queue, accessor)?;
        let removed = source.unbind(&destination, &binding.routing_key, &binding.arguments);
        if removed && source.auto_delete && source.binding_count() == 0 {
            self.delete_auto_exchange(&source.name);
        }
        Ok(removed)
    }

    /// `queue.bind`. Binding twice is a no-op.
    pub fn bind_queue(
        &self,
        binding: BindingDeclaration,
        accessor: Option<ConnectionId>,
    ) -> Result<(), BindError> {
        self.bind(&binding, true, accessor)
    }

    /// `exchange.bind`: messages reaching `source` also go through `destination`.
    pub fn bind_exchange(&self, binding: BindingDeclaration) -> Result<(), BindError> {
        self.bind(&binding, false, None)
    }

    /// `queue.unbind`: returns whether such a binding existed (RabbitMQ answers ok either way).
    pub fn unbind_queue(
        &self,
        binding: BindingDeclaration,
        accessor: Option<ConnectionId>,
    ) -> Result<bool, BindError> {
        self.unbind(&binding, true, accessor)
    }

    /// `exchange.unbind`: returns whether such a binding existed.
    pub fn unbind_exchange(&self, binding: BindingDeclaration) -> Result<bool, BindError> {
        self.unbind(&binding, false, None)
    }
}
