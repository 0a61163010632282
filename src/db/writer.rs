//! The process's one writer: a thread with its own connection that runs the request handlers'
//! write jobs, several to a transaction (group commit).
//!
//! SQLite admits one writer at a time, so concurrent write requests only ever queue. Profiles
//! at 64 connections showed that queue to be the cost: a third of the server's CPU went to
//! threads parking on and waking from the writer lock, one hand-off per transaction. Here the
//! queued jobs are taken together: each runs inside its own SAVEPOINT (so a failed job undoes
//! only its own changes), then one COMMIT makes the whole batch durable, and only then does
//! any caller hear back. A job's result is therefore never seen before it is committed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use rocket::tokio::sync::oneshot;
use rusqlite::Connection;

use crate::error::ApiError;

/// The most jobs one transaction takes; bounds how long a job's caller waits behind others.
const MAX_BATCH: usize = 64;

/// A queued job, type-erased.
trait Work: Send {
    /// Runs the job inside the open transaction; returns whether its changes stay.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Replies to the caller: the job's own result, or `failed` when the transaction was not
    /// committed.
    fn finish(self: Box<Self>, failed: Option<ApiError>);
}

struct Task<T, F> {
    f: Option<F>,
    out: Option<Result<T, ApiError>>,
    reply: oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> Work for Task<T, F>
where
    F: FnOnce(&Connection) -> Result<T, ApiError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(ApiError::internal("a database write job panicked")));
        let keep = super::keeps_writes(&out);
        self.out = Some(out);
        keep
    }

    fn finish(self: Box<Self>, failed: Option<ApiError>) {
        let out = match (failed, self.out) {
            (Some(e), _) => Err(e),
            (None, Some(out)) => out,
            (None, None) => Err(ApiError::internal("a database write job did not run")),
        };
        // The caller may have gone (client disconnected); its result is simply dropped.
        let _ = self.reply.send(out);
    }
}

/// Handle to the writer thread. Dropping it finishes the queued jobs, closes the connection
/// (the last connection to close checkpoints and removes the WAL) and ends the thread.
pub struct Writer {
    queue: Option<Sender<Box<dyn Work>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            // A job's captures can hold the last handle: then this runs on the writer thread
            // itself, which ends on its own once the queue is empty.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(conn: Connection) -> Result<Writer, String> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("slugbase-writer".into())
            .spawn(move || serve(conn, jobs))
            .map_err(|e| format!("cannot start the database writer: {e}"))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `f` and waits for it to be committed (or to fail).
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| ApiError::internal("the database writer has stopped"))?
            .send(Box::new(Task {
                f: Some(f),
                out: None,
                reply,
            }))
            .map_err(|_| ApiError::internal("the database writer has stopped"))?;
        result
            .await
            .map_err(|_| ApiError::internal("the database writer dropped a job"))?
    }
}

fn serve(conn: Connection, jobs: Receiver<Box<dyn Work>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&conn, batch);
    }
}

/// Runs `batch` in one IMMEDIATE transaction and replies to every job.
fn commit(conn: &Connection, batch: Vec<Box<dyn Work>>) {
    let _writer = super::WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let mut done = Vec::with_capacity(batch.len());
    let failed = run_all(conn, batch, &mut done).err();
    if failed.is_some() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for job in done {
        job.finish(failed.clone());
    }
}

/// Runs each job under its own savepoint, then commits. Every job ends up in `done`, run or
/// not, so that each hears back whatever happens.
fn run_all(
    conn: &Connection,
    batch: Vec<Box<dyn Work>>,
    done: &mut Vec<Box<dyn Work>>,
) -> Result<(), ApiError> {
    let mut jobs = batch.into_iter();
    let result = (|| {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for job in jobs.by_ref() {
            done.push(job);
            let Some(job) = done.last_mut() else { break };
            conn.execute_batch("SAVEPOINT job")?;
            let keep = job.run(conn);
            // Some errors (disk full, I/O) make SQLite roll back the whole transaction.
            if conn.is_autocommit() {
                return Err(ApiError::unavailable(
                    "the write transaction was rolled back by SQLite",
                ));
            }
            if !keep {
                conn.execute_batch("ROLLBACK TO job")?;
            }
            conn.execute_batch("RELEASE job")?;
        }
        conn.execute_batch("COMMIT")?;
        Ok(())
    })();
    done.extend(jobs);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::http::Status;

    fn writer() -> (tempfile::TempDir, Writer, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = super::super::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .unwrap();
        let w = Writer::start(super::super::open(&path).unwrap()).unwrap();
        (dir, w, conn)
    }

    fn values(conn: &Connection) -> Vec<i64> {
        let mut st = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<i64, ApiError> {
        move |c| Ok(c.execute("INSERT INTO t (v) VALUES (?1)", [v])? as i64)
    }

    #[rocket::async_test]
    async fn batched_jobs_fail_alone() {
        let (_d, w, conn) = writer();
        let (ok, dup, server_err, client_err, panics, after) = rocket::tokio::join!(
            w.write(insert(1)),
            // Violates UNIQUE: a server error, so only this job's changes are undone.
            w.write(|c| {
                c.execute("INSERT INTO t (v) VALUES (2)", [])?;
                c.execute("INSERT INTO t (v) VALUES (1)", [])?;
                Ok(())
            }),
            w.write(|c| {
                c.execute("INSERT INTO t (v) VALUES (3)", [])?;
                Err::<(), _>(ApiError::internal("boom"))
            }),
            // A client error keeps what the job wrote (failure counters, audit events).
            w.write(|c| {
                c.execute("INSERT INTO t (v) VALUES (4)", [])?;
                Err::<(), _>(ApiError::new(Status::BadRequest, "NOPE", "no"))
            }),
            w.write(|_| -> Result<(), ApiError> { panic!("job panics") }),
            w.write(insert(5)),
        );
        assert_eq!(ok.unwrap(), 1);
        assert_eq!(dup.unwrap_err().status, Status::InternalServerError);
        assert_eq!(server_err.unwrap_err().code, "INTERNAL");
        assert_eq!(client_err.unwrap_err().code, "NOPE");
        assert_eq!(panics.unwrap_err().status, Status::InternalServerError);
        assert_eq!(after.unwrap(), 1);
        assert_eq!(values(&conn), vec![1, 4, 5]);
        // The thread survived the panic.
        assert_eq!(w.write(insert(6)).await.unwrap(), 1);
    }

    #[rocket::async_test]
    async fn a_failed_begin_fails_every_job_without_running_it() {
        let (_d, w, conn) = writer();
        conn.execute_batch("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE")
            .unwrap();
        // The writer's own busy timeout is 5 s; hold the lock a little longer than that.
        let held = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5_300));
            conn.execute_batch("COMMIT").unwrap();
            conn
        });
        let err = w.write(insert(1)).await.unwrap_err();
        assert_eq!(err.status, Status::ServiceUnavailable);
        let conn = held.join().unwrap();
        assert!(values(&conn).is_empty());
        assert_eq!(w.write(insert(2)).await.unwrap(), 1);
    }
}
