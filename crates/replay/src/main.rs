//! `replay-failures`: records the stream batches the stream function gave up on, then deletes
//! each object whose records are all recorded. See `--help`.

use aws_config::{BehaviorVersion, Region};
use replay_failures::{DEFAULT_PREFIX, Replay, Verdict};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use user_stream::{StreamConsumer, WelcomeQueue};
use users_core::HistoryRepository;

const USAGE: &str = "\
replay-failures: records the stream batches Lambda gave up on, kept whole in the stack's
on-failure bucket, through the stream function's own code; deletes an object only when every
one of its records is recorded, and reports (and keeps) everything else.

Usage: replay-failures --bucket NAME [--history-table NAME] (--welcome-queue-url URL | --no-welcome)
                       [--endpoint URL] [--region REGION] [--prefix PREFIX] [--dry-run]

  --bucket NAME         the bucket (the stack's output StreamFailureBucketName)
  --history-table NAME  the history table (default: $HISTORY_TABLE; the stack's output
                        HistoryTableName)
  --welcome-queue-url URL
                        new users are also put on this welcome queue, as the stream
                        function does (default: $WELCOME_QUEUE_URL; the stack's output
                        WelcomeQueueUrl)
  --no-welcome          the stack sends no welcome emails (no WelcomeSender): forward nobody.
                        One of the two is required, so no replayed user misses a welcome
                        because the queue was forgotten
  --endpoint URL        a local endpoint for S3, DynamoDB and SQS, such as scripts/run's
                        http://127.0.0.1:8000 (default: AWS, with the usual credentials)
  --region REGION       default: the usual AWS configuration (AWS_REGION, profile)
  --prefix PREFIX       only objects under it (default: aws/lambda/)
  --dry-run             read and decode every object; write and delete nothing

Exit status: 0 when every object was replayed (or there was none), 1 when any object was
kept, 2 on a usage error or when the bucket cannot be listed.";

#[derive(Debug, Default)]
struct Options {
    bucket: Option<String>,
    history_table: Option<String>,
    welcome_queue_url: Option<String>,
    no_welcome: bool,
    endpoint: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    dry_run: bool,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .filter(|value| !value.starts_with("--"))
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--bucket" => options.bucket = Some(value("--bucket")?),
            "--history-table" => options.history_table = Some(value("--history-table")?),
            "--welcome-queue-url" => {
                options.welcome_queue_url = Some(value("--welcome-queue-url")?)
            }
            "--endpoint" => options.endpoint = Some(value("--endpoint")?),
            "--region" => options.region = Some(value("--region")?),
            "--prefix" => options.prefix = Some(value("--prefix")?),
            "--no-welcome" => options.no_welcome = true,
            "--dry-run" => options.dry_run = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// The welcome queue to forward new users to: the option, else the environment's; none only
/// when told `--no-welcome`, so forgetting the queue cannot drop a replayed user's welcome.
fn welcome_queue(options: &Options, env_url: Option<String>) -> Result<Option<String>, String> {
    match (&options.welcome_queue_url, options.no_welcome) {
        (Some(_), true) => Err("give --welcome-queue-url or --no-welcome, not both".into()),
        (Some(url), false) => Ok(Some(url.clone())),
        // Told so: the environment's queue (if any) is not used.
        (None, true) => Ok(None),
        (None, false) => match env_url.filter(|url| !url.is_empty()) {
            Some(url) => Ok(Some(url)),
            None => Err("give --welcome-queue-url (or set WELCOME_QUEUE_URL), or --no-welcome if the stack sends no welcome emails".into()),
        },
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(problem) if problem.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("replay-failures: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(bucket) = options.bucket.clone() else {
        eprintln!("replay-failures: --bucket is required\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let history_table = options.history_table.clone().or_else(|| {
        std::env::var("HISTORY_TABLE")
            .ok()
            .filter(|t| !t.is_empty())
    });
    let Some(history_table) = history_table else {
        eprintln!("replay-failures: give --history-table or set HISTORY_TABLE\n\n{USAGE}");
        return ExitCode::from(2);
    };

    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint);
        // A local endpoint (moto) takes any credentials; keep the user's if there are some.
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "replay-failures",
            ));
        }
        if options.region.is_none() && std::env::var_os("AWS_REGION").is_none() {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    let aws = loader.load().await;
    // A local endpoint serves every bucket under its own host: path-style addressing.
    let s3_config = aws_sdk_s3::config::Builder::from(&aws)
        .force_path_style(options.endpoint.is_some())
        .build();
    let mut consumer = StreamConsumer::new(HistoryRepository::new(
        aws_sdk_dynamodb::Client::new(&aws),
        history_table,
    ));
    let env_queue_url = std::env::var("WELCOME_QUEUE_URL").ok();
    match welcome_queue(&options, env_queue_url) {
        Ok(Some(url)) => {
            consumer =
                consumer.with_welcome(WelcomeQueue::new(aws_sdk_sqs::Client::new(&aws), url));
        }
        Ok(None) => {}
        Err(problem) => {
            eprintln!("replay-failures: {problem}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let replay = Replay {
        s3: aws_sdk_s3::Client::from_conf(s3_config),
        bucket: bucket.clone(),
        prefix: options
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
        consumer,
        dry_run: options.dry_run,
    };
    run(&replay).await
}

async fn run(replay: &Replay) -> ExitCode {
    let keys = match replay.keys().await {
        Ok(keys) => keys,
        Err(err) => {
            eprintln!("replay-failures: {err}");
            return ExitCode::from(2);
        }
    };
    let mode = if replay.dry_run { " (dry run)" } else { "" };
    println!(
        "s3://{}/{}: {} kept failure(s){mode}",
        replay.bucket,
        replay.prefix,
        keys.len()
    );
    let (mut replayed, mut kept, mut failing_records) = (0, 0, 0);
    let mut last_progress = Instant::now();
    for (done, key) in keys.iter().enumerate() {
        let report = replay.replay_object(key).await;
        println!("{report}");
        match &report.verdict {
            Verdict::Replayed { .. } => replayed += 1,
            Verdict::Partial { failing, .. } => {
                kept += 1;
                failing_records += failing.len();
            }
            Verdict::Unreadable(_) | Verdict::NotDeleted { .. } => kept += 1,
        }
        if last_progress.elapsed() > Duration::from_secs(2) && done + 1 < keys.len() {
            eprintln!("progress: {}/{} object(s)", done + 1, keys.len());
            last_progress = Instant::now();
        }
    }
    let verb = if replay.dry_run {
        "replayable"
    } else {
        "replayed and deleted"
    };
    println!("done: {replayed} {verb}, {kept} kept ({failing_records} record(s) still failing)");
    if kept == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, String> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn the_welcome_queue_must_be_given_or_refused_explicitly() {
        let queue = |line: &str, env: Option<&str>| {
            welcome_queue(&args(line).unwrap(), env.map(str::to_owned))
        };
        assert_eq!(queue("--welcome-queue-url q", None), Ok(Some("q".into())));
        assert_eq!(queue("", Some("from-env")), Ok(Some("from-env".into())));
        assert_eq!(
            queue("--welcome-queue-url q", Some("from-env")),
            Ok(Some("q".into()))
        );
        assert_eq!(queue("--no-welcome", None), Ok(None));
        assert_eq!(queue("--no-welcome", Some("from-env")), Ok(None));
        assert!(queue("", None).unwrap_err().contains("--no-welcome"));
        assert!(queue("", Some("")).is_err());
        assert!(queue("--no-welcome --welcome-queue-url q", None).is_err());
    }

    #[test]
    fn flags_are_read_and_mistakes_named() {
        let options = args("--bucket b --history-table h --endpoint http://x --dry-run").unwrap();
        assert_eq!(options.bucket.as_deref(), Some("b"));
        assert_eq!(options.history_table.as_deref(), Some("h"));
        assert_eq!(options.endpoint.as_deref(), Some("http://x"));
        assert!(options.dry_run);
        assert_eq!(args("--bucket").unwrap_err(), "--bucket needs a value");
        assert_eq!(
            args("--bucket --dry-run").unwrap_err(),
            "--bucket needs a value"
        );
        assert_eq!(args("--nope").unwrap_err(), "unknown argument \"--nope\"");
        assert_eq!(args("--help").unwrap_err(), "");
    }
}
