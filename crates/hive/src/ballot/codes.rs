//! Each voter's code in a ballot (`NOT_VOTED`, `ABSTAINED`, `ABSENT` or a candidate's position),
//! a byte per voter when the candidates' positions fit in one.
//!
//! A ballot keeps one code per voter of its electorate, and a decision keeps them as the ballot's
//! record. In a 1,000-agent round with 50 contests, `u32` codes were 200 KB set per round (4 KB a
//! ballot, written with `rep stosb`: about 4,300 instructions each, 4.7% of the round) in blocks
//! large enough that each allocation and free made glibc consolidate its free small blocks. A
//! byte per voter is a quarter of that, below glibc's large-block sizes up to about 1,000 voters.

use crate::ballot::{ABSENT, ABSTAINED, NOT_VOTED};

/// Up to this many candidates a code fits in a byte: positions below 128, and the three special
/// codes (from `u32::MAX - 2` up) as the bytes from 253 up, which sign-extend back to them.
const NARROW_CANDIDATES: usize = 128;

// The special codes are the top three `u32`s, so that their low byte sign-extends back to them.
const _: () = assert!(
    NOT_VOTED == u32::MAX
        && ABSTAINED == u32::MAX - 1
        && ABSENT == u32::MAX - 2
        && NARROW_CANDIDATES <= 128
);

/// Every voter's code, by the voter's position in the electorate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Codes {
    /// A byte per voter (at most [`NARROW_CANDIDATES`] candidates).
    Narrow(Vec<u8>),
    /// A `u32` per voter.
    Wide(Vec<u32>),
}

/// A byte code as the `u32` it stands for.
#[inline(always)]
fn widen(code: u8) -> u32 {
    // Positions are below 128 (non-negative as `i8`); the special codes' bytes are negative.
    code as i8 as i32 as u32
}

impl Codes {
    /// `voters` codes, all `NOT_VOTED`, for a ballot of `candidates` candidates.
    pub(crate) fn not_voted(voters: usize, candidates: usize) -> Self {
        if candidates <= NARROW_CANDIDATES {
            Codes::Narrow(vec![NOT_VOTED as u8; voters])
        } else {
            Codes::Wide(vec![NOT_VOTED; voters])
        }
    }

    /// The codes `codes` (each a position below `candidates` or a special code) for a ballot of
    /// `candidates` candidates.
    #[cfg(feature = "serde")]
    pub(crate) fn from_codes(codes: Vec<u32>, candidates: usize) -> Self {
        if candidates <= NARROW_CANDIDATES {
            Codes::Narrow(codes.into_iter().map(|code| code as u8).collect())
        } else {
            Codes::Wide(codes)
        }
    }

    /// How many voters.
    pub(crate) fn len(&self) -> usize {
        match self {
            Codes::Narrow(codes) => codes.len(),
            Codes::Wide(codes) => codes.len(),
        }
    }

    /// The code of the voter at `position`.
    #[cfg(test)]
    pub(crate) fn get(&self, position: usize) -> u32 {
        match self {
            Codes::Narrow(codes) => widen(codes[position]),
            Codes::Wide(codes) => codes[position],
        }
    }

    /// Sets the code of the voter at `position` (a position below the ballot's candidates or a
    /// special code) and returns the one it had.
    #[inline(always)]
    pub(crate) fn replace(&mut self, position: usize, code: u32) -> u32 {
        match self {
            Codes::Narrow(codes) => widen(std::mem::replace(&mut codes[position], code as u8)),
            Codes::Wide(codes) => std::mem::replace(&mut codes[position], code),
        }
    }

    /// Sets the code of the voter at `position` if it is `NOT_VOTED`; returns whether it was (one
    /// look at the voter's entry for a round's cast, the common case).
    #[inline(always)]
    pub(crate) fn set_if_not_voted(&mut self, position: usize, code: u32) -> bool {
        match self {
            Codes::Narrow(codes) => {
                let entry = &mut codes[position];
                let first = *entry == NOT_VOTED as u8;
                if first {
                    *entry = code as u8;
                }
                first
            }
            Codes::Wide(codes) => {
                let entry = &mut codes[position];
                let first = *entry == NOT_VOTED;
                if first {
                    *entry = code;
                }
                first
            }
        }
    }

    /// Every voter's code, in position order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        let (narrow, wide) = match self {
            Codes::Narrow(codes) => (&codes[..], &[][..]),
            Codes::Wide(codes) => (&[][..], &codes[..]),
        };
        CodesIter {
            narrow: narrow.iter(),
            wide: wide.iter(),
        }
    }
}

/// [`Codes::iter`]: one of the two slices is empty.
struct CodesIter<'a> {
    narrow: std::slice::Iter<'a, u8>,
    wide: std::slice::Iter<'a, u32>,
}

impl Iterator for CodesIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self.narrow.next() {
            Some(&code) => Some(widen(code)),
            None => self.wide.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.narrow.len() + self.wide.len();
        (len, Some(len))
    }
}

impl ExactSizeIterator for CodesIter<'_> {}

#[cfg(test)]
mod tests {
    use super::{Codes, NARROW_CANDIDATES};
    use crate::ballot::{ABSENT, ABSTAINED, NOT_VOTED};

    #[test]
    fn narrow_and_wide_codes_read_back_every_code_they_were_given() {
        for candidates in [1, NARROW_CANDIDATES, NARROW_CANDIDATES + 1, 1_000] {
            let mut codes = Codes::not_voted(candidates + 3, candidates);
            assert_eq!(
                matches!(codes, Codes::Narrow(_)),
                candidates <= NARROW_CANDIDATES
            );
            assert!(codes.iter().all(|code| code == NOT_VOTED));
            let given: Vec<u32> = (0..candidates as u32)
                .chain([ABSENT, ABSTAINED, NOT_VOTED])
                .collect();
            for (position, &code) in given.iter().enumerate() {
                if code == NOT_VOTED {
                    continue;
                }
                assert!(codes.set_if_not_voted(position, code));
                assert!(!codes.set_if_not_voted(position, 0), "set once only");
                assert_eq!(codes.get(position), code);
            }
            assert_eq!(codes.iter().collect::<Vec<_>>(), given);
            assert_eq!(codes.iter().len(), codes.len());
            assert_eq!(codes.replace(0, ABSTAINED), 0);
            assert_eq!(codes.replace(0, NOT_VOTED), ABSTAINED);
            assert_eq!(codes.get(0), NOT_VOTED);
        }
    }
}
