//! A light call waiting on its own tokio timer when the global runtime shuts down is recorded
//! `Cancelled`, as a heavy one is (qa5's case: the timer's panic inside tokio was recorded as the
//! agent's own `Panicked`, which supervision counts). Its own binary: a shutdown is final for the
//! process.

#[path = "support/global_shutdown.rs"]
mod global_shutdown;

use global_shutdown::{round_through_the_global_shutdown, Hang};

#[test]
fn a_light_call_on_a_timer_cut_short_by_the_global_shutdown_is_cancelled_not_panicked() {
    round_through_the_global_shutdown(Hang::OnATimer, false);
}
