//! `serde` support (feature `serde`) for the types whose shape differs from their fields: a
//! decision's id as hex, an agent's error as its message, a ballot record with its voters.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent::AgentError;
use crate::ballot::{BallotChoices, Tally, VoterRecord};
use crate::decision::BallotRecord;
use crate::lockfree::{ConflictKind, ProposalId};

/// A `u128` id as 32 lower-case hex digits (JSON numbers lose precision past 2^53).
pub(crate) mod hex_id {
    use super::*;

    pub(crate) fn serialize<Z: Serializer>(id: &u128, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(&format!("{id:032x}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        u128::from_str_radix(&text, 16)
            .map_err(|error| D::Error::custom(format!("decision id `{text}` is not hex: {error}")))
    }
}

/// An agent's error is kept as its message: the source error's type does not survive a process
/// boundary.
impl Serialize for AgentError {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AgentError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(AgentError::msg)
    }
}

#[derive(Serialize)]
struct BallotRecordOut<'a, K> {
    key: &'a K,
    kind: ConflictKind,
    candidates: &'a [ProposalId],
    tally: &'a Tally,
    votes: usize,
    cancelled: usize,
    voters: Vec<VoterRecord>,
}

#[derive(Deserialize)]
struct BallotRecordIn<K> {
    key: K,
    kind: ConflictKind,
    candidates: Vec<ProposalId>,
    tally: Tally,
    votes: usize,
    cancelled: usize,
    #[serde(default)]
    voters: Vec<VoterRecord>,
}

impl<K: Serialize> Serialize for BallotRecord<K> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        BallotRecordOut {
            key: &self.key,
            kind: self.kind,
            candidates: &self.candidates,
            tally: &self.tally,
            votes: self.votes,
            cancelled: self.cancelled,
            voters: self.voters().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de, K: Deserialize<'de>> Deserialize<'de> for BallotRecord<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let record = BallotRecordIn::<K>::deserialize(deserializer)?;
        let choices = if record.voters.is_empty() {
            None
        } else {
            Some(
                BallotChoices::from_records(&record.voters, &record.candidates)
                    .map_err(|error| D::Error::custom(format!("invalid ballot voters: {error}")))?,
            )
        };
        Ok(BallotRecord {
            key: record.key,
            kind: record.kind,
            candidates: record.candidates,
            tally: record.tally,
            votes: record.votes,
            cancelled: record.cancelled,
            choices,
        })
    }
}
