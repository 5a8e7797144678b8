//! Reviewer agents editing a shared service configuration, as LLM-backed reviewers would: each
//! proposes an edit, conflicting edits go to a supermajority vote, one reviewer hangs and one
//! fails. The round is followed live (tracing at info, and the hive's events), the decision is
//! printed with `Display` and exported as JSON.
//!
//! Run with `cargo run -p hivekit-examples --example reviewer_agents`
//! (`RUST_LOG=debug` shows every step).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, HiveEventSink, ProposalOf,
    Snapshot, State, Threshold, TieBreak, Vote,
};
use tracing_subscriber::EnvFilter;

/// The shared configuration the reviewers edit.
#[derive(Debug, Clone, Default)]
struct Config(BTreeMap<String, String>);

/// Set `key` to `value`.
#[derive(Debug, Clone)]
struct Edit {
    key: String,
    value: String,
}

impl State for Config {
    type Key = String;
    type Change = Edit;

    fn apply(&mut self, edit: &Edit) {
        self.0.insert(edit.key.clone(), edit.value.clone());
    }
}

/// How a reviewer behaves; a real one would call a model here.
#[derive(Debug, Clone, Copy)]
enum Mood {
    /// Answers after `thinking` (simulated model latency).
    Helpful { thinking: Duration },
    /// Never answers: the hive's agent timeout cuts it off.
    Hung,
    /// Its model endpoint is down.
    Broken,
}

/// Proposes one edit and, in a contest, backs the value it prefers.
struct Reviewer {
    name: &'static str,
    key: &'static str,
    value: &'static str,
    mood: Mood,
}

impl Agent<Config> for Reviewer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Config>,
    ) -> Result<Option<ProposalOf<Config>>, AgentError> {
        match self.mood {
            Mood::Helpful { thinking } => tokio::time::sleep(thinking).await,
            Mood::Hung => std::future::pending::<()>().await,
            Mood::Broken => return Err(AgentError::msg("model endpoint returned 503")),
        }
        if view.0.get(self.key).map(String::as_str) == Some(self.value) {
            return Ok(None);
        }
        println!(
            "  {} ({}) proposes {} = {} in round {}",
            self.name,
            ctx.agent(),
            self.key,
            self.value,
            ctx.round()
        );
        let edit = Edit {
            key: self.key.to_string(),
            value: self.value.to_string(),
        };
        Ok(Some(ctx.proposal(edit).writes([self.key.to_string()])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Config>,
        contest: &Contest<Config>,
    ) -> Result<Vote, AgentError> {
        if let Mood::Broken = self.mood {
            return Err(AgentError::msg("model endpoint returned 503"));
        }
        // Back our own edit if it stands; otherwise the candidate setting the value we want;
        // otherwise the most cautious (smallest) value.
        if let Some(own) = ctx.own(contest) {
            return Ok(Vote::For(own.id));
        }
        let wanted = contest
            .candidates
            .iter()
            .find(|candidate| contest.key == self.key && candidate.change.value == self.value);
        let choice = wanted.or_else(|| {
            contest
                .candidates
                .iter()
                .min_by(|a, b| a.change.value.cmp(&b.change.value))
        });
        Ok(choice.map_or(Vote::Abstain, |candidate| Vote::For(candidate.id)))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        // Colours only on a terminal: piped into a file or `grep`, the lines stay plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let mut initial = Config::default();
    initial.0.insert("timeout".into(), "30s".into());
    initial.0.insert("retries".into(), "3".into());
    let hive = Hive::builder(initial)
        .name("reviewers")
        // Two thirds of the votes cast must back an edit; a tie decides nothing.
        .policy(ConsensusPolicy {
            threshold: Threshold::Supermajority { num: 2, den: 3 },
            quorum: 0.5,
            weighted: false,
            tie_break: TieBreak::NoDecision,
        })
        .agent_timeout(Duration::from_millis(300))
        .events(HiveEventSink::callback(|event| {
            println!("  event: {event}")
        }))
        .build()?;

    let thinking = |millis| Mood::Helpful {
        thinking: Duration::from_millis(millis),
    };
    let reviewers = [
        ("ana", "timeout", "10s", thinking(40)),
        ("bo", "timeout", "60s", thinking(60)),
        ("cy", "retries", "5", thinking(20)),
        ("dee", "log_level", "info", thinking(30)),
        ("eve", "timeout", "10s", Mood::Hung),
        ("fox", "retries", "1", Mood::Broken),
    ];
    for (name, key, value, mood) in reviewers {
        let id = hive.spawn(Reviewer {
            name,
            key,
            value,
            mood,
        });
        println!("{name} joined as {id}");
    }

    let runtime = tokio::runtime::Runtime::new()?;
    println!("\nround 1, live:");
    let decision = runtime.block_on(hive.decide())?;

    println!("\nthe decision:\n{decision:#}");
    println!(
        "\nthe configuration at version {}:",
        hive.memory().version()
    );
    for (key, value) in &hive.memory().load().0 {
        println!("  {key} = {value}");
    }
    println!("\nas JSON:\n{}", serde_json::to_string_pretty(&decision)?);
    Ok(())
}
