//! The clock of one connection: how long it may sit idle, and how long a request head may
//! take to arrive.
//!
//! [`Phase`] is shared by the connection's stream, its service and its [`Deadlines`], all
//! polled on the connection's task: the service marks a request as being handled when hyper
//! hands it over (its head is complete) and the connection as idle once the response is
//! ready; the stream marks a request head as started when bytes arrive on an idle connection.
//! [`Deadlines`], polled right after the connection each time the task wakes, arms one timer
//! for the phase it finds and resolves when it fires, and the task then drops the
//! connection. While a request is handled there is no deadline here: the body's own deadline
//! is the API's (it knows when it is reading one), and a handler waiting for the store is not
//! the client's fault.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Waiting for a request head, or receiving one.
const HEAD: u32 = 0;
/// Between a complete head and the response.
const HANDLING: u32 = 1;
/// Waiting for the next request on a kept-alive connection.
const IDLE: u32 = 2;
const PHASE_BITS: u32 = 2;
const PHASE_MASK: u32 = (1 << PHASE_BITS) - 1;

/// Where a connection is in its request cycle, with the number of requests started so far
/// (so the stream can tell a new idle period from the one it armed its timer for, even when
/// a pipelined request went by without a read).
#[derive(Debug, Default)]
pub struct Phase(AtomicU32);

impl Phase {
    /// A request head is complete and handed to the service.
    pub fn handling(&self) {
        let requests = self.0.load(Ordering::Relaxed) >> PHASE_BITS;
        self.0
            .store(((requests + 1) << PHASE_BITS) | HANDLING, Ordering::Relaxed);
    }

    /// The response is ready; the connection waits for the next request.
    pub fn idle(&self) {
        let requests = self.0.load(Ordering::Relaxed) & !PHASE_MASK;
        self.0.store(requests | IDLE, Ordering::Relaxed);
    }

    /// Connected, and no request head complete yet.
    pub fn awaiting_first_request(&self) -> bool {
        self.get() == HEAD
    }

    fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Bytes arrived on an idle connection: a request head has started.
    fn head_started(&self, seen: u32) {
        self.0.store((seen & !PHASE_MASK) | HEAD, Ordering::Relaxed);
    }
}

/// The timer of a connection's current phase. Resolves when the connection has waited
/// longer than allowed for a request head, or sat idle longer than allowed.
pub struct Deadlines {
    phase: Arc<Phase>,
    /// The phase (with its request count) the timer was armed for.
    armed_for: u32,
    timer: Pin<Box<Sleep>>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl Deadlines {
    /// A new connection must send its first request head within `header_read_timeout`.
    pub fn new(phase: Arc<Phase>, header_read_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            armed_for: phase.get(),
            phase,
            timer: Box::pin(tokio::time::sleep(header_read_timeout)),
            header_read_timeout,
            idle_timeout,
        }
    }
}

impl Future for Deadlines {
    type Output = ();

    /// Must be polled after the connection each time the task wakes: phases change only
    /// while the connection is polled, and a phase seen here for the first time arms the
    /// timer (which then wakes the task itself).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let phase = this.phase.get();
        let timeout = match phase & PHASE_MASK {
            HEAD => this.header_read_timeout,
            IDLE => this.idle_timeout,
            _ => {
                this.armed_for = phase;
                return Poll::Pending;
            }
        };
        if this.armed_for != phase {
            this.armed_for = phase;
            this.timer.as_mut().reset(Instant::now() + timeout);
        }
        this.timer.as_mut().poll(cx)
    }
}

/// A TCP stream that tells the connection's [`Phase`] when bytes arrive on an idle
/// connection.
pub struct DeadlineStream {
    stream: TcpStream,
    phase: Arc<Phase>,
}

impl DeadlineStream {
    pub fn new(stream: TcpStream, phase: Arc<Phase>) -> Self {
        Self { stream, phase }
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let phase = this.phase.get();
            if phase & PHASE_MASK == IDLE {
                this.phase.head_started(phase);
            }
        }
        read
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
