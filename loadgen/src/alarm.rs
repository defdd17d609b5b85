//! Waking the open loop at each step's intended instant, on the runtime's own thread.
//!
//! tokio's timer rounds every deadline up to its next millisecond tick: it started steps up to a
//! millisecond late (counted as latency, since latency runs from the intended time; at 1,000
//! steps/s the median was 1.9 ms against 0.4 ms on a precise timer) and sent each millisecond's
//! steps in one burst. A thread of its own sleeping on the OS's high-resolution timer is precise,
//! but hands every step over to the runtime: two wake-ups and two context switches per step,
//! which cost loadgen more CPU than the request itself (the CPU the stack under test is measured
//! with). On Linux a timerfd watched by the runtime's reactor is as precise and wakes the very
//! thread that then sends the request. Elsewhere, or if no timerfd can be made, tokio's timer.

use std::time::Instant;

/// Wakes its owner at an instant.
pub struct Alarm {
    #[cfg(target_os = "linux")]
    timer: Option<timerfd::Timer>,
}

impl Alarm {
    /// A precise alarm where the OS has one; call it inside the runtime.
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            timer: timerfd::Timer::new().ok(),
        }
    }

    /// Returns at `at` or just after it, never before.
    pub async fn until(&mut self, at: Instant) {
        loop {
            let left = at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            #[cfg(target_os = "linux")]
            if let Some(timer) = &self.timer {
                if timer.sleep(left).await.is_ok() {
                    continue;
                }
                // A timerfd that stopped working: tokio's timer from now on.
                self.timer = None;
            }
            tokio::time::sleep(left).await;
        }
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    use std::{io, time::Duration};

    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use tokio::net::unix::pipe;

    /// A one-shot CLOCK_MONOTONIC timerfd (the clock `Instant` reads) in the runtime's reactor.
    ///
    /// It is held as a `pipe::Receiver`: tokio's one safe (and not deprecated) way to watch an
    /// owned descriptor that is read. tokio documents that constructor for pipes; a timerfd is
    /// not one, but only what a pipe's reader uses is used here (readiness and `read(2)`), and a
    /// timerfd reads like one: 8 bytes (how many times it fired) once it has fired, `WouldBlock`
    /// before.
    pub struct Timer(pipe::Receiver);

    impl Timer {
        pub fn new() -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            Ok(Self(pipe::Receiver::from_owned_fd_unchecked(fd)?))
        }

        /// Arms the timer `after` from now and waits until it fires. Arming resets the count a
        /// read returns, so a wake-up left over from an abandoned wait reads `WouldBlock`, which
        /// also clears the runtime's note that the descriptor is ready.
        pub async fn sleep(&self, after: Duration) -> io::Result<()> {
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // A zero value would disarm the timer instead.
            let value = Timespec::try_from(after.max(Duration::from_nanos(1)))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "alarm too far"))?;
            let spec = Itimerspec {
                it_interval: zero,
                it_value: value,
            };
            timerfd_settime(&self.0, TimerfdTimerFlags::empty(), &spec)?;
            let mut fired = [0u8; 8];
            loop {
                self.0.readable().await?;
                match self.0.try_read(&mut fired) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn it_never_wakes_early_even_after_abandoned_waits() {
        let mut alarm = Alarm::new();
        #[cfg(target_os = "linux")]
        assert!(alarm.timer.is_some(), "a timerfd on Linux");
        for i in 0..50u64 {
            let at = Instant::now() + Duration::from_micros(200 + 37 * i);
            alarm.until(at).await;
            let now = Instant::now();
            assert!(now >= at, "woke {:?} early", at - now);
        }
        // Abandoned waits leave the timer armed and its wake-up pending.
        for _ in 0..5 {
            let at = Instant::now() + Duration::from_millis(2);
            let _ = tokio::time::timeout(Duration::from_micros(100), alarm.until(at)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let at = Instant::now() + Duration::from_millis(20);
        alarm.until(at).await;
        assert!(Instant::now() >= at);
    }

    /// `until` checks the clock itself; this holds the timer to it without that check.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_timerfd_that_fired_for_an_abandoned_wait_does_not_end_the_next_one() {
        let timer = timerfd::Timer::new().unwrap();
        for _ in 0..3 {
            // Armed for 50 ms, abandoned at tokio's next millisecond or two...
            let abandoned = tokio::time::timeout(
                Duration::from_millis(1),
                timer.sleep(Duration::from_millis(50)),
            )
            .await;
            assert!(
                abandoned.is_err(),
                "the 50 ms wait ended within the 1 ms timeout"
            );
            // ...then it fires with nobody waiting, and the runtime sees it ready.
            std::thread::sleep(Duration::from_millis(60));
            tokio::task::yield_now().await;
            let started = Instant::now();
            timer.sleep(Duration::from_millis(15)).await.unwrap();
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(15), "woke after {took:?}");
        }
    }
}
