//! A line-protocol server on 127.0.0.1:0 run by the real driver, and a client for it.

#![allow(dead_code)]

pub mod line;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqgate_session::{run_connection, ConnectionReport, DriverConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use line::{LineCodec, LineHandshake, LineSettings, Probe};

/// Every test step is bounded by this; a hang fails instead of blocking the suite.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .expect("test step timed out")
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub config: DriverConfig,
    pub settings: LineSettings,
    pub event_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: DriverConfig {
                handshake_timeout: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(2),
                ..DriverConfig::default()
            },
            settings: LineSettings {
                max_line: 1024,
                keepalive: None,
            },
            event_capacity: 1024,
        }
    }
}

/// One accepted connection, as the test sees it from the server side.
pub struct ServerConn {
    pub events: mpsc::Sender<String>,
    pub probe: Arc<Probe>,
    pub task: JoinHandle<ConnectionReport>,
}

impl ServerConn {
    /// Waits for the driver to close the connection and returns its report.
    pub async fn report(self) -> ConnectionReport {
        within(self.task).await.expect("driver task failed")
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    accepted: mpsc::UnboundedReceiver<ServerConn>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and returns once the listener is ready.
    pub async fn start(options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let (accepted_tx, accepted) = mpsc::unbounded_channel();
        let token = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(_) => return,
                };
                let (events, receiver) = mpsc::channel(options.event_capacity);
                let probe = Arc::new(Probe::default());
                let handshake = LineHandshake {
                    settings: options.settings,
                    events: receiver,
                    probe: Arc::clone(&probe),
                };
                let task = tokio::spawn(run_connection(
                    stream,
                    LineCodec::default(),
                    handshake,
                    options.config,
                    token.child_token(),
                ));
                if accepted_tx
                    .send(ServerConn {
                        events,
                        probe,
                        task,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
        Self {
            addr,
            shutdown,
            accepted,
        }
    }

    /// The next connection the server accepted.
    pub async fn accepted(&mut self) -> ServerConn {
        within(self.accepted.recv()).await.expect("server stopped")
    }

    /// Connects a client and returns it with the server's side of the connection.
    pub async fn connect(&mut self) -> (Client, ServerConn) {
        let client = Client::connect(self.addr).await;
        let conn = self.accepted().await;
        (client, conn)
    }
}

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within(TcpStream::connect(addr)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        within(self.writer.write_all(bytes)).await.unwrap();
    }

    /// Reads one line without its newline; `None` at end of stream.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        let read = within(self.reader.read_line(&mut line)).await;
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
        }
    }

    /// Reads one line and fails the test unless it is `expected`.
    pub async fn expect(&mut self, expected: &str) {
        assert_eq!(self.line().await.as_deref(), Some(expected));
    }

    /// Asserts the server closed the connection with nothing more to say.
    pub async fn expect_eof(&mut self) {
        assert_eq!(self.line().await, None);
    }

    /// Says hello and waits for the welcome.
    pub async fn hello(&mut self, name: &str) {
        self.send(format!("HELLO {name}\n").as_bytes()).await;
        self.expect(&format!("WELCOME {name}")).await;
    }
}
