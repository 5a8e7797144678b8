//! Running child commands with their output captured and handed over line by line as it arrives.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::error::XtaskError;

/// Which stream a captured line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A command line as text, for messages: `cargo bench -p hivekit-runtime`.
pub(crate) fn display_command(program: &OsString, args: &[OsString]) -> String {
    std::iter::once(program)
        .chain(args)
        .map(|part| shell_quote(&part.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word for a POSIX shell when it needs it.
pub(crate) fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs a command with stdout and stderr captured, calling `on_line` for every line as it arrives
/// (lines of the two streams interleave in arrival order). Returns the exit status.
pub(crate) fn run_captured(
    command: &mut Command,
    description: &str,
    mut on_line: impl FnMut(Stream, &str),
) -> Result<ExitStatus, XtaskError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| XtaskError::CommandFailed {
            command: description.to_owned(),
            outcome: format!("could not start: {error}"),
        })?;
    let (sender, receiver) = mpsc::channel::<(Stream, String)>();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(forward_lines(stdout, Stream::Stdout, sender.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(forward_lines(stderr, Stream::Stderr, sender.clone()));
    }
    // The receiver ends once both readers hit end of file and drop their senders.
    drop(sender);
    for (stream, line) in receiver {
        on_line(stream, &line);
    }
    for reader in readers {
        // A reader only ends by end of file or a read error; either way the lines it had are in.
        let _ = reader.join();
    }
    child.wait().map_err(|error| XtaskError::CommandFailed {
        command: description.to_owned(),
        outcome: format!("could not be waited for: {error}"),
    })
}

fn forward_lines(
    stream: impl Read + Send + 'static,
    kind: Stream,
    sender: mpsc::Sender<(Stream, String)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        // Lines are read as bytes so that a stray non-UTF-8 byte cannot stop the capture.
        while matches!(reader.read_until(b'\n', &mut buffer), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buffer);
            let line = line.trim_end_matches(['\n', '\r']).to_owned();
            if sender.send((kind, line)).is_err() {
                break;
            }
            buffer.clear();
        }
    })
}

/// The last `n` lines of a captured output, for failure messages.
pub(crate) fn tail(lines: &[String], n: usize) -> &[String] {
    &lines[lines.len().saturating_sub(n)..]
}

/// A `cargo` command run in the workspace root.
pub(crate) fn cargo_command(root: &Path, args: &[OsString]) -> Command {
    let mut command = Command::new(crate::workspace::cargo());
    command.args(args).current_dir(root);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("bench"), "bench");
        assert_eq!(shell_quote("--filter=a/b"), "--filter=a/b");
        assert_eq!(shell_quote("snapshot_.*"), "'snapshot_.*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn captures_both_streams_line_by_line() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out1; echo err1 >&2; echo out2; exit 3"]);
        let mut seen = Vec::new();
        let status = run_captured(&mut command, "sh", |stream, line| {
            seen.push((stream, line.to_owned()));
        })
        .expect("runs");
        assert_eq!(status.code(), Some(3));
        let out: Vec<&str> = seen
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(out, ["out1", "out2"]);
        assert!(seen.contains(&(Stream::Stderr, "err1".to_owned())));
    }

    #[test]
    fn missing_program_is_an_error() {
        let mut command = Command::new("/nonexistent/xtask-no-such-program");
        let error = run_captured(&mut command, "nothing", |_, _| {}).unwrap_err();
        assert!(error.to_string().contains("could not start"), "{error}");
    }

    #[test]
    fn tails() {
        let lines: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        assert_eq!(tail(&lines, 2), ["3", "4"]);
        assert_eq!(tail(&lines, 9).len(), 5);
    }
}
