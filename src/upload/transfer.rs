//! One transfer: resume or start the multipart upload, stream the source into parts (bounded by
//! the part buffers in flight), hash in source order, check size, digest and format, complete.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinSet;

pub use super::bandwidth::Bandwidth;
use super::checks::{check_end, check_job, check_parts_count};
use super::source::{self, Opened};
use super::{Done, Job, Progress, Settings, UploadError, View, format, lock, oss};

/// What starting over says when the source did not continue at the offset asked for.
pub const NO_RANGE: &str = "the source ignores Range requests (or changed since the upload began), so the upload started over";

/// A failed run: the error, and whether the multipart upload is gone.
pub struct Failed {
    pub error: UploadError,
    pub restart: bool,
}

impl From<UploadError> for Failed {
    fn from(error: UploadError) -> Self {
        let restart = oss::is_no_such_upload(&error);
        Self { error, restart }
    }
}

/// Publishes a transfer's view and wakes the engine.
pub struct Reporter {
    pub key: String,
    pub view: Arc<Mutex<View>>,
    pub wakes: broadcast::Sender<String>,
}

impl Reporter {
    fn progress(&self, progress: Progress) {
        *lock(&self.view) = View::Running(progress);
        let _ = self.wakes.send(self.key.clone());
    }

    /// Records the end of the run.
    pub fn finish(&self, outcome: Result<Done, Failed>) {
        let last = match &*lock(&self.view) {
            View::Running(progress) => Some(progress.clone()),
            _ => None,
        };
        let view = match outcome {
            Ok(done) => View::Finished(done),
            Err(Failed { error, restart }) => {
                tracing::warn!(key = %self.key, code = error.code(), %error, "upload failed");
                View::Failed {
                    error,
                    restart,
                    progress: last,
                }
            }
        };
        *lock(&self.view) = view;
        let _ = self.wakes.send(self.key.clone());
    }
}

/// The parts done, and the hash state at each part's end until the contiguous prefix reaches it.
struct Tracker {
    progress: Progress,
    etags: BTreeMap<u32, String>,
    states: BTreeMap<u32, String>,
    started: Instant,
    read: u64,
}

impl Tracker {
    /// A part uploaded: advance the prefix as far as it now reaches.
    fn complete(&mut self, number: u32, etag: String) -> Progress {
        self.etags.insert(number, etag);
        while self.etags.contains_key(&(self.progress.parts_done + 1)) {
            let next = self.progress.parts_done + 1;
            self.progress.parts_done = next;
            self.progress.bytes_done = u64::from(next) * self.progress.part_size;
            if let Some(state) = self.states.remove(&next) {
                self.progress.sha256_state = Some(state);
            }
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.progress.bytes_per_second =
            (seconds > 0.0).then(|| (self.read as f64 / seconds) as u64);
        self.progress.clone()
    }
}

fn state_hex(hasher: &Sha256) -> String {
    hex::encode(hasher.serialize().as_slice())
}

fn state_from_hex(hex_state: &str) -> Option<Sha256> {
    let bytes = hex::decode(hex_state).ok()?;
    let state = SerializedState::<Sha256>::try_from(bytes.as_slice()).ok()?;
    Sha256::deserialize(&state).ok()
}

/// Where this run begins.
struct Begin {
    upload_id: String,
    part_size: u64,
    parts_done: u32,
    hasher: Sha256,
    etags: BTreeMap<u32, String>,
    restarted: Option<String>,
}

/// Checks a resume point against `ListParts`; why it cannot be used, if it cannot.
async fn resume(client: &ossify::Client, job: &Job) -> Result<Result<Begin, String>, UploadError> {
    let Some(point) = &job.resume else {
        return Ok(Err(String::new()));
    };
    let hasher = match (&point.sha256_state, point.parts_done) {
        (_, 0) => Sha256::new(),
        (Some(state), _) => match state_from_hex(state) {
            Some(hasher) => hasher,
            None => return Ok(Err("the recorded SHA-256 state is unreadable".into())),
        },
        (None, _) => return Ok(Err("no SHA-256 state was recorded".into())),
    };
    if point.bytes_done != u64::from(point.parts_done) * point.part_size || point.part_size == 0 {
        return Ok(Err("the recorded offsets do not fit the part size".into()));
    }
    let parts = match oss::list_parts(client, &job.object, &point.upload_id).await {
        Ok(parts) => parts,
        Err(error) if oss::is_no_such_upload(&error) => {
            return Ok(Err("the recorded multipart upload no longer exists".into()));
        }
        Err(error) => return Err(error),
    };
    let mut etags = BTreeMap::new();
    for part in parts
        .into_iter()
        .filter(|p| p.part_number <= point.parts_done)
    {
        if part.size != point.part_size {
            return Ok(Err(format!(
                "part {} has {} bytes in OSS, not {}",
                part.part_number, part.size, point.part_size
            )));
        }
        etags.insert(part.part_number, part.etag);
    }
    if etags.len() != point.parts_done as usize {
        return Ok(Err(format!(
            "OSS lists {} of the {} parts recorded as done",
            etags.len(),
            point.parts_done
        )));
    }
    Ok(Ok(Begin {
        upload_id: point.upload_id.clone(),
        part_size: point.part_size,
        parts_done: point.parts_done,
        hasher,
        etags,
        restarted: None,
    }))
}

/// A fresh upload, aborting the old one (if any) first.
async fn fresh(
    client: &ossify::Client,
    job: &Job,
    settings: &Settings,
    old: Option<&str>,
    reason: Option<String>,
) -> Result<Begin, UploadError> {
    if let Some(old) = old
        && let Err(error) = oss::abort_with(client, &job.object, old).await
    {
        tracing::warn!(key = %job.key, %error, "could not abort the previous multipart upload");
    }
    if let Some(reason) = &reason {
        tracing::info!(key = %job.key, %reason, "upload starts over");
    }
    Ok(Begin {
        upload_id: oss::initiate(client, &job.object).await?,
        part_size: settings.part_size.max(1),
        parts_done: 0,
        hasher: Sha256::new(),
        etags: BTreeMap::new(),
        restarted: reason,
    })
}

/// Runs one transfer to its end.
pub async fn run(
    job: &Job,
    settings: &Settings,
    bandwidth: Option<&Bandwidth>,
    report: &Reporter,
) -> Result<Done, Failed> {
    let expected_sha256 = check_job(job, settings)?;
    oss::check_credentials(&job.credentials).await?;
    let client = oss::client(settings, &job.credentials, &job.region, &job.bucket)?;
    let old = job.resume.as_ref().map(|point| point.upload_id.as_str());
    // The source is opened before any upload is initiated, so a refused or missing source
    // leaves nothing behind in OSS.
    let (resumed, reason) = match resume(&client, job).await? {
        Ok(begin) => (Some(begin), None),
        Err(reason) => (
            None,
            (!reason.is_empty()).then(|| format!("{reason}, so the upload started over")),
        ),
    };
    let offset = resumed
        .as_ref()
        .map_or(0, |b| u64::from(b.parts_done) * b.part_size);
    let validator = job
        .resume
        .as_ref()
        .and_then(|point| point.validator.as_deref())
        .filter(|_| resumed.is_some());
    let mut opened = source::open(&job.source, &job.headers, settings, offset, validator).await?;
    let part_size = resumed
        .as_ref()
        .map_or(settings.part_size, |b| b.part_size)
        .max(1);
    if let Some(total) = opened.total {
        check_parts_count(total.div_ceil(part_size), part_size)?;
    }
    let begin = match resumed {
        Some(begin) if opened.start == offset => begin,
        Some(begin) => {
            fresh(
                &client,
                job,
                settings,
                Some(&begin.upload_id),
                Some(NO_RANGE.to_string()),
            )
            .await?
        }
        None => fresh(&client, job, settings, old, reason).await?,
    };
    let head = if opened.start > 0 {
        read_head(job, settings, opened.validator.as_deref()).await?
    } else {
        Vec::new()
    };
    stream(
        job,
        settings,
        bandwidth,
        report,
        &client,
        begin,
        &mut opened,
        head,
        expected_sha256,
    )
    .await
}

/// The first [`format::HEAD`] bytes, read apart when a resumed run starts past them.
async fn read_head(
    job: &Job,
    settings: &Settings,
    validator: Option<&str>,
) -> Result<Vec<u8>, UploadError> {
    let mut opened = source::open_range(
        &job.source,
        &job.headers,
        settings,
        format::HEAD as u64,
        validator,
    )
    .await?;
    let mut head = Vec::with_capacity(format::HEAD);
    while head.len() < format::HEAD {
        let Some(chunk) = opened.chunk().await? else {
            break;
        };
        let take = (format::HEAD - head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
    }
    Ok(head)
}

/// Streams the source from `begin` on, then checks and completes.
#[allow(clippy::too_many_arguments)] // the run's parts, each used once
async fn stream(
    job: &Job,
    settings: &Settings,
    bandwidth: Option<&Bandwidth>,
    report: &Reporter,
    client: &ossify::Client,
    begin: Begin,
    opened: &mut Opened,
    mut head: Vec<u8>,
    expected_sha256: Option<String>,
) -> Result<Done, Failed> {
    let part_size = begin.part_size;
    let upload_id = begin.upload_id.clone();
    let mut hasher = begin.hasher;
    let restarted = begin.restarted.clone();
    let first_progress = Progress {
        upload_id: upload_id.clone(),
        part_size,
        parts_done: begin.parts_done,
        bytes_done: u64::from(begin.parts_done) * part_size,
        bytes_total: opened.total,
        bytes_per_second: None,
        sha256_state: (begin.parts_done > 0).then(|| state_hex(&hasher)),
        validator: opened.validator.clone(),
        restarted: begin.restarted,
    };
    report.progress(first_progress.clone());
    let tracker = Arc::new(Mutex::new(Tracker {
        progress: first_progress,
        etags: begin.etags,
        states: BTreeMap::new(),
        started: Instant::now(),
        read: 0,
    }));
    let buffers = Arc::new(Semaphore::new(settings.parts_in_flight.max(1)));
    let mut tasks: JoinSet<Result<(), UploadError>> = JoinSet::new();
    let mut number = begin.parts_done + 1;
    let mut offset = u64::from(begin.parts_done) * part_size;
    let mut tail: Vec<u8> = Vec::with_capacity(2 * format::TAIL);
    let mut carry: Option<Bytes> = None;
    let capacity = usize::try_from(part_size).unwrap_or(usize::MAX);
    loop {
        let permit = buffers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| part_task_failed("the part buffers closed"))?;
        check_parts(&mut tasks)?;
        let mut buffer = BytesMut::with_capacity(capacity);
        let mut ended = false;
        while buffer.len() < capacity {
            let chunk = match carry.take() {
                Some(chunk) => chunk,
                None => match read(opened, &mut tasks).await? {
                    Some(chunk) => {
                        if let Some(bandwidth) = bandwidth {
                            bandwidth.take(chunk.len()).await;
                        }
                        chunk
                    }
                    None => {
                        ended = true;
                        break;
                    }
                },
            };
            let mut chunk = chunk;
            let room = capacity - buffer.len();
            if chunk.len() > room {
                carry = Some(chunk.split_off(room));
            }
            offset += chunk.len() as u64;
            if offset > settings.max_size {
                return Err(UploadError::SourceTooLarge {
                    url: opened.shown.clone(),
                    limit: settings.max_size,
                    declared: None,
                }
                .into());
            }
            hasher.update(&chunk);
            if head.len() < format::HEAD {
                let take = (format::HEAD - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            tail.extend_from_slice(&chunk[chunk.len().saturating_sub(format::TAIL)..]);
            if tail.len() > format::TAIL {
                tail.drain(..tail.len() - format::TAIL);
            }
            buffer.extend_from_slice(&chunk);
            lock(&tracker).read += chunk.len() as u64;
            // A part that failed for good ends the run now, not when its buffer is wanted again.
            check_parts(&mut tasks)?;
        }
        if buffer.is_empty() && number > 1 {
            break;
        }
        check_parts_count(u64::from(number), part_size)?;
        lock(&tracker).states.insert(number, state_hex(&hasher));
        let body = buffer.freeze();
        let (client, object, id) = (client.clone(), job.object.clone(), upload_id.clone());
        let (tracker, reporter) = (
            tracker.clone(),
            Reporter {
                key: report.key.clone(),
                view: report.view.clone(),
                wakes: report.wakes.clone(),
            },
        );
        tasks.spawn(async move {
            let etag = oss::upload_part(&client, &object, &id, number, body).await?;
            drop(permit);
            let progress = lock(&tracker).complete(number, etag);
            reporter.progress(progress);
            Ok(())
        });
        number += 1;
        if ended {
            break;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|error| part_task_failed(&error.to_string()))??;
    }
    let sha256 = hex::encode(hasher.finalize());
    let detected = format::detect(&head, &tail);
    let mismatch = check_end(
        job,
        opened.total,
        offset,
        &sha256,
        expected_sha256.as_deref(),
        detected,
    );
    if let Some(error) = mismatch {
        if let Err(abort) = oss::abort_with(client, &job.object, &upload_id).await {
            tracing::warn!(key = %job.key, error = %abort, "could not abort the multipart upload");
        }
        return Err(Failed {
            error,
            restart: true,
        });
    }
    let etags: Vec<String> = lock(&tracker).etags.values().cloned().collect();
    oss::complete(client, &job.object, &upload_id, etags).await?;
    Ok(Done {
        size: offset,
        sha256,
        format: Some(detected.to_string()),
        restarted,
    })
}

/// A part's task that ended without an answer (it panicked or was cancelled).
fn part_task_failed(detail: &str) -> UploadError {
    UploadError::OssTransport {
        action: "UploadPart",
        detail: detail.to_string(),
        timeout: false,
    }
}

/// The first error of the part uploads finished so far, if any.
fn check_parts(tasks: &mut JoinSet<Result<(), UploadError>>) -> Result<(), UploadError> {
    while let Some(joined) = tasks.try_join_next() {
        joined.map_err(|error| part_task_failed(&error.to_string()))??;
    }
    Ok(())
}

/// The next chunk; on a read error, the parts already read finish uploading first, so the
/// progress to resume from is as far as it can be.
async fn read(
    opened: &mut Opened,
    tasks: &mut JoinSet<Result<(), UploadError>>,
) -> Result<Option<Bytes>, UploadError> {
    match opened.chunk().await {
        Ok(chunk) => Ok(chunk),
        Err(error) => {
            while tasks.join_next().await.is_some() {}
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_state_round_trips_through_hex() {
        let mut hasher = Sha256::new();
        hasher.update(b"first part ");
        let resumed = state_from_hex(&state_hex(&hasher));
        assert!(resumed.is_some());
        let mut resumed = resumed.unwrap_or_default();
        resumed.update(b"and the rest");
        assert_eq!(
            resumed.finalize(),
            Sha256::digest(b"first part and the rest")
        );
        assert!(state_from_hex("00").is_none());
    }

    #[test]
    fn progress_is_the_contiguous_prefix_of_completed_parts() {
        let progress = Progress {
            upload_id: "U".into(),
            part_size: 10,
            parts_done: 0,
            bytes_done: 0,
            bytes_total: Some(35),
            bytes_per_second: None,
            sha256_state: None,
            validator: None,
            restarted: None,
        };
        let mut tracker = Tracker {
            progress,
            etags: BTreeMap::new(),
            states: (1..=4).map(|n| (n, format!("state-{n}"))).collect(),
            started: Instant::now(),
            read: 35,
        };
        let after_two = tracker.complete(2, "e2".into());
        assert_eq!((after_two.parts_done, after_two.sha256_state), (0, None));
        let after_three = tracker.complete(3, "e3".into());
        assert_eq!(after_three.parts_done, 0);
        let after_one = tracker.complete(1, "e1".into());
        assert_eq!(
            (after_one.parts_done, after_one.bytes_done),
            (3, 30),
            "part 1 completes the prefix up to 3"
        );
        assert_eq!(after_one.sha256_state.as_deref(), Some("state-3"));
        assert_eq!(tracker.states.keys().collect::<Vec<_>>(), [&4]);
    }
}
