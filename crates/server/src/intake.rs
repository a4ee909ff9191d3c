//! Admission of client bytes: framing with the client codec (its configured limit), the
//! in-flight bound per connection, flow-control credit, and idle connections.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_proto::msg::client::{ClientError, ClientToServer};
use auction_proto::{RequestNo, Seq};
use auction_replica::Replica;

use crate::action::ConnId;
use crate::sessions::{Effect, MAX_IN_FLIGHT, Sessions};

/// Bytes a connection may have unread in the core: one largest frame and a read chunk, so a
/// whole frame always fits.
pub(crate) fn window(codec: &auction_proto::ClientCodec) -> usize {
    auction_proto::codec::CLIENT_HEADER_LEN + codec.max_payload() + 16 * 1024
}

impl Sessions {
    /// A new connection: refused (closed at once) over `max` connections in all, or over
    /// `per_source` from its IP address (so that one host cannot take every slot); else it
    /// may send one window of bytes.
    pub(crate) fn connect(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        max: usize,
        per_source: usize,
        now: Instant,
    ) {
        let same = self.conns.values().filter(|c| c.addr().ip() == addr.ip()).count();
        self.open(conn, addr, now);
        if self.len() > max {
            self.admission.refused_full += 1;
            self.disconnect(conn, "too many clients", false);
            return;
        }
        if same >= per_source {
            self.admission.refused_per_source += 1;
            self.disconnect(conn, "too many clients from one address", false);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.credit = window(&self.codec);
            self.dirty.insert(conn);
        }
    }

    /// Bytes arrived on `conn`: frames are decoded and handled in order while the connection
    /// has fewer than [`MAX_IN_FLIGHT`] unanswered requests; a bad frame is answered
    /// `BadRequest` and closes the connection.
    pub(crate) fn intake(
        &mut self,
        replica: &mut Replica,
        conn: ConnId,
        bytes: &[u8],
        now: Instant,
    ) -> Effect {
        let window = window(&self.codec);
        let Some(c) = self.conns.get_mut(&conn) else { return Effect::None };
        if c.inbuf.len() + bytes.len() > window {
            // More than the driver was granted: a driver bug, or a closing connection.
            debug_assert!(false, "conn {conn}: read past its credit");
            self.disconnect(conn, "read past its credit", false);
            return Effect::None;
        }
        if !bytes.is_empty() {
            c.last_read = now;
        }
        c.inbuf.extend_from_slice(bytes);
        self.decode(replica, conn, now)
    }

    fn decode(&mut self, replica: &mut Replica, conn: ConnId, now: Instant) -> Effect {
        let mut effect = Effect::None;
        loop {
            if self.closed.contains(&conn) {
                return effect;
            }
            let Some(c) = self.conns.get_mut(&conn) else { return effect };
            if c.unanswered >= MAX_IN_FLIGHT {
                if !c.inbuf.is_empty() {
                    self.blocked.insert(conn);
                }
                return effect;
            }
            match self.codec.decode_stream::<ClientToServer>(&c.inbuf) {
                Ok(Some((msg, used))) => {
                    c.inbuf.drain(..used);
                    c.credit += used;
                    self.dirty.insert(conn);
                    let ClientToServer::Request(req) = msg else { continue };
                    c.unanswered += 1;
                    if self.handle(replica, conn, req, now) == Effect::Leave {
                        effect = Effect::Leave;
                    }
                }
                Ok(None) => return effect,
                Err(e) => {
                    tracing::debug!(conn, error = %e, "bad client frame; connection closed");
                    c.unanswered += 1;
                    let seen = c_seen(self, conn);
                    self.respond(conn, RequestNo(0), seen, Err(ClientError::BadRequest));
                    self.disconnect(conn, "bad frame", true);
                    return effect;
                }
            }
        }
    }

    /// Connections that were at [`MAX_IN_FLIGHT`] and no longer are: decode what they hold.
    pub(crate) fn resume(&mut self, replica: &mut Replica, now: Instant) -> Effect {
        let mut effect = Effect::None;
        let ready: Vec<ConnId> = self
            .blocked
            .iter()
            .copied()
            .filter(|id| self.conns.get(id).is_none_or(|c| c.unanswered < MAX_IN_FLIGHT))
            .collect();
        for conn in ready {
            self.blocked.remove(&conn);
            if self.decode(replica, conn, now) == Effect::Leave {
                effect = Effect::Leave;
            }
        }
        effect
    }

    /// Closes connections that sent nothing for `idle`, and those that have not said `Hello`
    /// within `hello` of being accepted (they would hold a client slot for the whole idle
    /// timeout while sending a byte now and then).
    pub(crate) fn close_idle(&mut self, idle: Duration, hello: Duration, now: Instant) {
        let idle_conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_read) >= idle)
            .map(|(id, _)| *id)
            .collect();
        let silent: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.greeted() && now.saturating_duration_since(c.opened) >= hello)
            .map(|(id, _)| *id)
            .collect();
        for conn in idle_conns {
            if !self.closed.contains(&conn) {
                self.disconnect(conn, "idle", true);
            }
        }
        for conn in silent {
            if !self.closed.contains(&conn) {
                self.admission.hello_timeouts += 1;
                self.disconnect(conn, "no Hello in time", true);
            }
        }
    }
}

impl Sessions {
    /// Checks the invariants of the sessions (debug builds, after every input): the bounds of
    /// every connection, and nothing left for the driver.
    pub(crate) fn check_invariants(&self) {
        let window = window(&self.codec);
        for (id, c) in &self.conns {
            assert!(c.unanswered <= MAX_IN_FLIGHT, "conn {id}: {} unanswered", c.unanswered);
            assert!(c.inbuf.len() + c.credit <= window, "conn {id}: over its window");
        }
        let per_conn = crate::sessions::MAX_PENDING_PER_CONN * self.conns.len().max(1);
        assert!(self.pending() <= per_conn, "{} pending writes", self.pending());
        assert!(self.dirty.is_empty() && self.closed.is_empty(), "output left behind");
    }
}

/// The applied seq a connection was last given (a refusal made before any state is read).
fn c_seen(s: &Sessions, conn: ConnId) -> Seq {
    s.conns.get(&conn).map_or(Seq(0), |c| c.seen())
}
