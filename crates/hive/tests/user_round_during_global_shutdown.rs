//! A round on the global runtime survives its shutdown while a heavy call hangs: the call is
//! `Cancelled`, the other agent's change commits, and later rounds are refused by name. Its own
//! binary: a shutdown is final for the process.

#[path = "support/global_shutdown.rs"]
mod global_shutdown;

use global_shutdown::{round_through_the_global_shutdown, Hang};

#[test]
fn a_round_on_the_global_runtime_survives_its_shutdown_and_later_rounds_are_refused() {
    round_through_the_global_shutdown(Hang::Forever, true);
}
