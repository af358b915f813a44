//! The anomaly log: `<state>/anomalies.jsonl`, append-only, one JSON object per line, with a
//! per-node sequence number that keeps increasing across restarts.
//!
//! Retention is bounded: when the file passes `max_bytes` it is rotated to
//! `anomalies.1.jsonl` (the previous generation is dropped), and a rotated generation older than
//! `max_age` is dropped. The next sequence number is also kept in `anomalies.seq`, so it
//! continues even when retention removed every record. A line cut by a crash mid-write is
//! ignored (and cut off) on open, and so is the temp file of an interrupted `anomalies.seq`
//! write. Sync jobs run one at a time and never write an older counter over a newer one.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use super::model::Anomaly;
use crate::profile::persist::write_atomic;

pub const LOG_FILE: &str = "anomalies.jsonl";
pub const ROTATED_FILE: &str = "anomalies.1.jsonl";
pub const SEQ_FILE: &str = "anomalies.seq";

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("anomaly log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A record could not be written (a full disk): it is not logged nor published.
    #[error("anomaly log {path}: {source}: record not logged ({unlogged} since start)")]
    Unlogged {
        path: PathBuf,
        source: io::Error,
        unlogged: u64,
    },
}

pub struct AnomalyLog {
    dir: PathBuf,
    file: File,
    bytes: u64,
    next_seq: u64,
    retention: Retention,
    dirty: bool,
    /// The generation just rotated away, still to be made durable by the next sync job.
    rotated_unsynced: Option<File>,
    /// The counter last saved to `anomalies.seq`; sync jobs hold it while they run, so two
    /// never race on the same temp file.
    saved_seq: Arc<Mutex<u64>>,
    /// Records that could not be written (counted, never silent).
    unlogged: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl AnomalyLog {
    /// Opens (or creates) the log in the state directory `dir`.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        remove_stale_seq_temp_files(dir);
        let path = dir.join(LOG_FILE);
        let (last_in_log, good_len) = scan(&path).map_err(io_err(&path))?;
        let rotated = dir.join(ROTATED_FILE);
        drop_if_older(&rotated, retention.max_age);
        let (last_rotated, _) = scan(&rotated).map_err(io_err(&rotated))?;
        let saved = fs::read_to_string(dir.join(SEQ_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(1);
        let next_seq = saved.max(last_in_log + 1).max(last_rotated + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // Cut a torn last line so new records start on a line of their own.
        let len = file.metadata().map_err(io_err(&path))?.len();
        if good_len < len {
            file.set_len(good_len).map_err(io_err(&path))?;
            tracing::warn!(file = %path.display(), "cut a partial last line (interrupted write)");
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            bytes: good_len,
            next_seq,
            retention,
            dirty: false,
            rotated_unsynced: None,
            saved_seq: Arc::new(Mutex::new(saved)),
            unlogged: 0,
        })
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records that could not be written since the log was opened.
    pub fn unlogged(&self) -> u64 {
        self.unlogged
    }

    /// The last sequence number given out (0 when none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Appends `anomaly` with the next sequence number (its `seq` is overwritten) and returns it.
    /// The line reaches the page cache at once (it survives the process being killed); `sync`
    /// makes it durable against power loss.
    pub fn append(&mut self, mut anomaly: Anomaly) -> Result<Anomaly, LogError> {
        anomaly.seq = self.next_seq;
        let mut line = serde_json::to_vec(&anomaly).expect("anomalies serialise");
        line.push(b'\n');
        if self.bytes + line.len() as u64 > self.retention.max_bytes && self.bytes > 0 {
            self.rotate()?;
        }
        let path = self.dir.join(LOG_FILE);
        if let Err(source) = self.file.write_all(&line) {
            // A full disk takes part of a line: cut it, or the next record would be glued to
            // it and unreadable. The sequence number is not used up (nothing was published).
            if let Err(e) = self.file.set_len(self.bytes) {
                tracing::warn!(file = %path.display(), "cutting a partial record: {e}");
            }
            self.unlogged += 1;
            return Err(LogError::Unlogged {
                path,
                source,
                unlogged: self.unlogged,
            });
        }
        self.bytes += line.len() as u64;
        self.next_seq += 1;
        self.dirty = true;
        Ok(anomaly)
    }

    /// fsync of the log and the saved sequence number, now (at exit, in tests).
    pub fn sync(&mut self) -> Result<(), LogError> {
        match self.sync_job() {
            Some(job) => job.run(),
            None => Ok(()),
        }
    }

    /// The same work, packaged to run on another thread: an fsync of tens of MB takes tens of
    /// ms, which must not stall the agent's event loop. `None` when nothing changed.
    pub fn sync_job(&mut self) -> Option<SyncJob> {
        if !self.dirty && self.rotated_unsynced.is_none() {
            return None;
        }
        let file = self.file.try_clone().ok()?;
        self.dirty = false;
        Some(SyncJob {
            file,
            rotated: self.rotated_unsynced.take(),
            dir: self.dir.clone(),
            next_seq: self.next_seq,
            saved_seq: self.saved_seq.clone(),
        })
    }

    /// Renames the log to the rotated generation and starts a new one. No fsync here (this runs
    /// on the event loop): the old file's descriptor goes to the next sync job, and a restart
    /// finds the sequence number in either generation.
    fn rotate(&mut self) -> Result<(), LogError> {
        let path = self.dir.join(LOG_FILE);
        let rotated = self.dir.join(ROTATED_FILE);
        fs::rename(&path, &rotated).map_err(io_err(&rotated))?;
        let fresh = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(io_err(&path))?;
        self.rotated_unsynced = Some(std::mem::replace(&mut self.file, fresh));
        self.dirty = true;
        self.bytes = 0;
        tracing::info!(file = %rotated.display(), "anomaly log rotated");
        Ok(())
    }

    /// Records with `seq > after`, oldest first, at most `limit` of them.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Anomaly>, LogError> {
        read_after(&self.dir, after, limit)
    }

    /// One record by sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Anomaly>, LogError> {
        get(&self.dir, seq)
    }
}

/// An fsync of the anomaly log, to run on a blocking thread.
pub struct SyncJob {
    file: File,
    rotated: Option<File>,
    dir: PathBuf,
    next_seq: u64,
    saved_seq: Arc<Mutex<u64>>,
}

impl SyncJob {
    pub fn run(self) -> Result<(), LogError> {
        // One job at a time: a slow fsync must not let the next job's counter write race on the
        // same temp file, nor a late job put back an older counter.
        let mut saved = self
            .saved_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(rotated) = &self.rotated {
            let path = self.dir.join(ROTATED_FILE);
            rotated.sync_data().map_err(io_err(&path))?;
        }
        let path = self.dir.join(LOG_FILE);
        self.file.sync_data().map_err(io_err(&path))?;
        if self.next_seq > *saved {
            save_seq(&self.dir, self.next_seq)?;
            *saved = self.next_seq;
        }
        Ok(())
    }
}

fn save_seq(dir: &Path, next_seq: u64) -> Result<(), LogError> {
    let seq_path = dir.join(SEQ_FILE);
    write_atomic(&seq_path, format!("{next_seq}\n").as_bytes()).map_err(|e| LogError::Io {
        path: seq_path,
        source: io::Error::other(e.to_string()),
    })
}

/// Records with `seq > after` in the log of state dir `dir`, oldest first (rotated generation
/// first, then the current file), at most `limit` of them. Reads the files only, so it runs
/// beside the writer (replays for gRPC clients).
pub fn read_after(dir: &Path, after: u64, limit: usize) -> Result<Vec<Anomaly>, LogError> {
    let mut out = Vec::new();
    for name in [ROTATED_FILE, LOG_FILE] {
        let path = dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(LogError::Io { path, source: e }),
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io_err(&path))?;
            let Ok(a) = serde_json::from_str::<Anomaly>(&line) else {
                continue;
            };
            if a.seq > after {
                out.push(a);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// One record of the log of state dir `dir`, by sequence number.
pub fn get(dir: &Path, seq: u64) -> Result<Option<Anomaly>, LogError> {
    Ok(read_after(dir, seq.saturating_sub(1), 1)?
        .into_iter()
        .find(|a| a.seq == seq))
}

/// (last sequence number in the file, length of its valid prefix). Missing file: (0, 0).
fn scan(path: &Path) -> io::Result<(u64, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut last = 0;
    let mut good = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            break; // torn last line
        }
        if let Ok(a) = serde_json::from_slice::<Anomaly>(&line) {
            last = last.max(a.seq);
        }
        good += n as u64;
    }
    Ok((last, good))
}

/// Removes the temp files of `anomalies.seq` writes that a kill interrupted (see
/// [`write_atomic`]: `.anomalies.seq.<pid>.tmp`).
fn remove_stale_seq_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{SEQ_FILE}.");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix)
            && name.ends_with(".tmp")
            && fs::remove_file(entry.path()).is_ok()
        {
            tracing::info!(file = name, "removed the temp file of an interrupted write");
        }
    }
}

fn drop_if_older(path: &Path, max_age: Duration) {
    let old = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > max_age);
    if old && fs::remove_file(path).is_ok() {
        tracing::info!(file = %path.display(), "dropped an anomaly log generation past its retention age");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sensor-anomalies-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// The shared fixture with `subject`.
    fn anomaly(subject: &str) -> Anomaly {
        let mut a = Anomaly::sample("/usr/bin/curl");
        a.finding.subject = subject.into();
        a
    }

    #[test]
    fn sequence_numbers_continue_across_reopen() {
        let d = dir("reopen");
        let mut log = AnomalyLog::open(&d, Retention::default()).unwrap();
        assert_eq!(log.append(anomaly("a")).unwrap().seq, 1);
        assert_eq!(log.append(anomaly("b")).unwrap().seq, 2);
        drop(log);
        let mut log = AnomalyLog::open(&d, Retention::default()).unwrap();
        assert_eq!(log.append(anomaly("c")).unwrap().seq, 3);
        let after1: Vec<u64> = log
            .read_after(1, 100)
            .unwrap()
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(after1, vec![2, 3]);
        assert_eq!(log.get(2).unwrap().unwrap().finding.subject, "b");
        assert_eq!(log.read_after(3, 100).unwrap().len(), 0);
        assert_eq!(log.read_after(0, 2).unwrap().len(), 2, "limit");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_and_numbering_continues() {
        let d = dir("torn");
        let mut log = AnomalyLog::open(&d, Retention::default()).unwrap();
        log.append(anomaly("a")).unwrap();
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join(LOG_FILE))
            .unwrap();
        f.write_all(br#"{"seq":2,"time":"2026"#).unwrap();
        drop(f);
        let mut log = AnomalyLog::open(&d, Retention::default()).unwrap();
        assert_eq!(log.append(anomaly("b")).unwrap().seq, 2);
        let all = log.read_after(0, 100).unwrap();
        assert_eq!(all.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![1, 2]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotation_bounds_the_size_and_keeps_numbering_and_replay() {
        let d = dir("rotate");
        // Room for six records a generation: of the 40, seqs 31..=36 end in the rotated
        // generation and 37..=40 in the current one.
        let mut probe = anomaly("s10");
        probe.seq = 10;
        let record = serde_json::to_vec(&probe).unwrap().len() as u64 + 1;
        let retention = Retention {
            max_bytes: 6 * record,
            max_age: Duration::from_secs(3600),
        };
        let mut log = AnomalyLog::open(&d, retention).unwrap();
        for i in 0..40 {
            log.append(anomaly(&format!("s{i}"))).unwrap();
        }
        assert!(fs::metadata(d.join(LOG_FILE)).unwrap().len() <= retention.max_bytes);
        assert!(d.join(ROTATED_FILE).exists());
        // Replay from a seq that lives in the rotated generation, in order.
        let replay = log.read_after(30, 100).unwrap();
        assert_eq!(replay.first().map(|a| a.seq), Some(31));
        assert_eq!(replay.last().map(|a| a.seq), Some(40));
        log.sync().unwrap();
        drop(log);
        // Even with every record gone, numbering continues from the saved counter.
        fs::remove_file(d.join(LOG_FILE)).unwrap();
        fs::remove_file(d.join(ROTATED_FILE)).unwrap();
        let mut log = AnomalyLog::open(&d, retention).unwrap();
        assert_eq!(log.append(anomaly("x")).unwrap().seq, 41);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn interrupted_counter_writes_leave_no_temp_file_and_late_jobs_do_not_go_back() {
        let d = dir("seqtmp");
        let mut log = AnomalyLog::open(&d, Retention::default()).unwrap();
        log.append(anomaly("a")).unwrap();
        let early = log.sync_job().unwrap();
        log.append(anomaly("b")).unwrap();
        log.sync().unwrap();
        early.run().unwrap(); // finished last: must not write "2" over "3"
        assert_eq!(fs::read_to_string(d.join(SEQ_FILE)).unwrap(), "3\n");
        drop(log);
        let tmp = d.join(format!(".{SEQ_FILE}.4242.tmp"));
        fs::write(&tmp, "9").unwrap();
        let log = AnomalyLog::open(&d, Retention::default()).unwrap();
        assert!(
            !tmp.exists(),
            "the interrupted write's temp file is removed on open"
        );
        assert_eq!(
            log.next_seq(),
            3,
            "a temp file is never read as the counter"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
