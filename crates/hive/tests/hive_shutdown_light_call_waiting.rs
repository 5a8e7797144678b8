//! A round on the global runtime survives its shutdown while a light call waits on a future
//! nothing wakes (qa5's case: the call's timeout timer, polled outside any panic guard, panicked
//! inside tokio once the runtime was "being shutdown", and `decide` unwound). Its own binary: a
//! shutdown is final for the process.

#[path = "support/global_shutdown.rs"]
mod global_shutdown;

use global_shutdown::{round_through_the_global_shutdown, Hang};

#[test]
fn a_round_whose_light_call_waits_survives_the_global_shutdown() {
    round_through_the_global_shutdown(Hang::Forever, false);
}
