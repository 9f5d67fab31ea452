//! `bus monitor`: live events, commands, results and configurations.

use std::path::{Path, PathBuf};

use bus_core::{Codec, Exchange};

use crate::broker::Brokers;
use crate::cli::MonitorArgs;
use crate::exit::CliError;
use crate::filter;
use crate::output::{Output, notice};
use crate::save;
use crate::view::View;
use crate::watch::{self, Step, Watch};

/// The bindings asked for: with no option at all, `#` on the three
/// exchanges; an option given without patterns means `#`.
fn bindings(args: &MonitorArgs) -> Result<Vec<(Exchange, String)>, CliError> {
    let none = args.events.is_none() && args.commands.is_none() && args.configurations.is_none();
    let mut out = Vec::new();
    for (exchange, given) in [
        (Exchange::Events, &args.events),
        (Exchange::Commands, &args.commands),
        (Exchange::Configurations, &args.configurations),
    ] {
        let patterns = match given {
            Some(p) if !p.is_empty() => p.clone(),
            Some(_) => vec!["#".to_owned()],
            None if none => vec!["#".to_owned()],
            None => continue,
        };
        for pattern in filter::patterns(&patterns)? {
            out.push((exchange, pattern.as_str().to_owned()));
        }
    }
    Ok(out)
}

/// Runs the monitor; returns the exit code.
pub(crate) async fn run(
    args: MonitorArgs,
    brokers: &Brokers,
    out: &mut Output,
) -> Result<u8, CliError> {
    let view = Watch {
        brokers,
        tool: "bus-monitor",
        bindings: bindings(&args)?,
        limits: &args.limits,
    };
    let save_codec = if out.is_json() {
        Codec::Json
    } else {
        Codec::Cbor
    };
    watch::run(view, |seen| {
        let view = seen.view();
        if !args.filter_fields.is_empty() {
            match &view.payload {
                Ok(payload) if filter::keep(&args.filter_fields, payload) => {}
                _ => return Ok(Step::Skipped),
            }
        }
        let saved = if args.save {
            save(&view, save_codec, Path::new("."))?
        } else {
            None
        };
        if out.is_json() {
            let mut record = view.to_json();
            if let Some(path) = &saved {
                record["saved_as"] = path.display().to_string().into();
            }
            out.record(&record)?;
        } else {
            let note = saved.map(|p| format!("saved as {}", p.display()));
            out.text(&view.to_text(note.as_deref()))?;
        }
        Ok(Step::Shown)
    })
    .await
}

/// Saves the payload in `codec`: the original bytes when it was already in
/// that codec, else re-encoded. A payload that cannot be saved is reported
/// and skipped; the monitor goes on.
fn save(view: &View<'_>, codec: Codec, dir: &Path) -> Result<Option<PathBuf>, CliError> {
    let payload = match &view.payload {
        Ok(payload) => payload,
        Err(error) => {
            notice(&format!("not saved: {}: {error}", view.seen.routing_key));
            return Ok(None);
        }
    };
    let bytes = if view.seen.codec() == codec {
        view.seen.body.clone()
    } else {
        match codec.encode_value(payload) {
            Ok(bytes) => bytes,
            Err(error) => {
                notice(&format!("not saved: {}: {error}", view.seen.routing_key));
                return Ok(None);
            }
        }
    };
    let ext = match codec {
        Codec::Cbor => "cbor",
        Codec::Json => "json",
    };
    save::payload_file(
        dir,
        &view.seen.routing_key,
        view.conversation_id(),
        ext,
        &bytes,
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Limits;

    fn args(
        events: Option<&[&str]>,
        commands: Option<&[&str]>,
        configurations: Option<&[&str]>,
    ) -> MonitorArgs {
        let own = |p: Option<&[&str]>| p.map(|p| p.iter().map(|s| s.to_string()).collect());
        MonitorArgs {
            events: own(events),
            commands: own(commands),
            configurations: own(configurations),
            save: false,
            filter_fields: vec![],
            limits: Limits {
                count: None,
                timeout: None,
            },
        }
    }

    #[test]
    fn everything_by_default() {
        let b = bindings(&args(None, None, None)).unwrap();
        assert_eq!(
            b,
            [
                (Exchange::Events, "#".to_owned()),
                (Exchange::Commands, "#".to_owned()),
                (Exchange::Configurations, "#".to_owned())
            ]
        );
    }

    #[test]
    fn only_what_is_asked() {
        let b = bindings(&args(Some(&["a.*", "b"]), Some(&[]), None)).unwrap();
        assert_eq!(
            b,
            [
                (Exchange::Events, "a.*".to_owned()),
                (Exchange::Events, "b".to_owned()),
                (Exchange::Commands, "#".to_owned())
            ]
        );
        assert!(bindings(&args(Some(&[""]), None, None)).is_err());
    }
}
