//! Heart-beating: negotiated at CONNECT, enforced both ways.
//!
//! Invariants:
//! - With nothing negotiated (STOMP 1.0, or `0,0`) there is no timer at all.
//! - The server sends an EOL whenever it sent nothing for about its interval (a beat is due
//!   once the next tick would come too late), so the client never waits longer than agreed.
//! - A client silent for `grace_factor` times its interval is closed; silence while the session
//!   holds the client's reads back (flow control) does not count.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest tick honoured, so tiny intervals cannot spin the task.
const MIN_TICK: Duration = Duration::from_millis(20);

/// What a tick asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing to do.
    Idle,
    /// Send a heart-beat.
    Send,
    /// The client has been silent too long.
    TimedOut,
}

/// The heart-beat clocks of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    send_every: Option<Duration>,
    silence_limit: Option<Duration>,
    last_in: Instant,
    last_out: Instant,
}

impl Heartbeat {
    /// Clocks for beats sent every `send_every` and client beats expected every `expect_every`,
    /// closing after `grace_factor` intervals of silence.
    pub(crate) fn new(
        send_every: Option<Duration>,
        expect_every: Option<Duration>,
        grace_factor: u32,
        now: Instant,
    ) -> Self {
        Self {
            send_every,
            silence_limit: expect_every.map(|every| every.saturating_mul(grace_factor.max(1))),
            last_in: now,
            last_out: now,
        }
    }

    /// Something (a frame or a beat) arrived from the client.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_in = now;
    }

    /// Something was sent to the client.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last_out = now;
    }

    /// What is due at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Beat {
        if let Some(limit) = self.silence_limit {
            if now.saturating_duration_since(self.last_in) > limit {
                return Beat::TimedOut;
            }
        }
        if let (Some(every), Some(tick)) = (self.send_every, self.tick_interval()) {
            if now.saturating_duration_since(self.last_out) + tick >= every {
                self.last_out = now;
                return Beat::Send;
            }
        }
        Beat::Idle
    }

    /// How often to check: half the shorter interval, at least 20 ms; `None` when neither way
    /// beats.
    pub(crate) fn tick_interval(&self) -> Option<Duration> {
        let send = self.send_every.map(|every| every / 2);
        let receive = self.silence_limit.map(|limit| limit / 4);
        let tick = match (send, receive) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        Some(tick.max(MIN_TICK))
    }
}

/// Parses a `heart-beat` header: two non-negative integers (milliseconds), `cx,cy`.
pub(crate) fn parse_header(value: &str) -> Option<(u64, u64)> {
    let (send, receive) = value.split_once(',')?;
    Some((send.trim().parse().ok()?, receive.trim().parse().ok()?))
}

/// The server's side of the negotiation for a client offering `cx,cy`: the interval at which the
/// server sends (`None`: never) and the one at which it expects the client's beats, each at least
/// `floor`.
pub(crate) fn negotiate(
    (client_send, client_receive): (u64, u64),
    floor: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let interval = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms).max(floor));
    (interval(client_receive), interval(client_send))
}

/// The CONNECTED `heart-beat` header value for a negotiated pair.
pub(crate) fn header_value(send: Option<Duration>, expect: Option<Duration>) -> String {
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis());
    format!("{},{}", ms(send), ms(expect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_honours_the_floor_and_zeroes() {
        let floor = Duration::from_millis(1000);
        assert_eq!(negotiate((0, 0), floor), (None, None));
        let (send, expect) = negotiate((500, 5000), floor);
        assert_eq!(send, Some(Duration::from_millis(5000)));
        assert_eq!(expect, Some(Duration::from_millis(1000)));
        assert_eq!(header_value(send, expect), "5000,1000");
        assert_eq!(parse_header("10, 20"), Some((10, 20)));
        assert_eq!(parse_header("-1,2"), None);
        assert_eq!(parse_header("12"), None);
    }

    #[test]
    fn beats_are_sent_and_silence_is_detected() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(100)),
            2,
            start,
        );
        assert_eq!(hb.check(start + Duration::from_millis(10)), Beat::Idle);
        assert_eq!(hb.check(start + Duration::from_millis(60)), Beat::Send);
        hb.received(start + Duration::from_millis(150));
        assert_eq!(hb.check(start + Duration::from_millis(300)), Beat::Send);
        assert_eq!(hb.check(start + Duration::from_millis(351)), Beat::TimedOut);
    }
}
