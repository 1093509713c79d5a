//! The threads the models' kernels run on, and a team of threads for the short parallel loops
//! of a decoding step.
//!
//! Three mechanisms:
//! - the team below ([`Team`]) runs the k-quant products row by row (`kernels::kquant`: every
//!   decoding step and short chunk, and prompts on CPUs below AVX2) and the
//!   decoding attention's KV heads (`qwen2::attention`);
//! - a private rayon pool ([`compute_pool`]) is where a Qwen2 forward pass runs: its rayon loops
//!   (candle's operations on prompt chunks, the tiles of prompt-sized products in
//!   `kernels::kquant::tiles`) are then split between the calling thread and the pool's others,
//!   instead of handed to the global pool while the caller sleeps (+10% prompt speed);
//! - rayon's global pool runs candle's operations everywhere else (the Marian and embedding
//!   models).
//!
//! Why not one: prompt loops last milliseconds, where rayon's sleeping and waking costs
//! nothing, and candle's operations bring their own threading (rayon's). Moving the tiles onto
//! the team too (whose workers spin for `SPIN_BEFORE_SLEEP` after each loop while rayon's take
//! the cores for the next) is a speed question not measured yet, so they stay on rayon.
//!
//! Why the team: a decoding step of the 1.5B model is about 140 parallel loops of 5-300 µs
//! each. Under rayon, an idle worker yields to the kernel between them (a system call per
//! round) and goes to sleep after a few dozen rounds, so that the next loop waits for it to be
//! woken; profiles showed 5% of a decoding step's samples in `sched_yield`, futex waits and
//! wake-ups. The team's workers spin on one atomic word between loops, as llama.cpp's threads
//! do between the operations of a graph, and sleep only after `SPIN_BEFORE_SLEEP` without work
//! (between requests, say). The caller works too: a team for `n` threads has `n - 1` workers.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_millis(2);

/// The claim word packs the job's generation, its item count and the next unclaimed item, so
/// that a worker which has fallen behind can never claim an item of a newer job with an
/// older job's closure or count: the compare-and-swap that claims an item checks all three.
const INDEX_BITS: u32 = 20;
const LEN_BITS: u32 = 20;
const MAX_ITEMS: usize = 1 << INDEX_BITS;
/// Generations run from 1 (0 is "no job yet") and wrap at this.
const MAX_GENERATION: u64 = (1 << (64 - INDEX_BITS - LEN_BITS)) - 1;

fn pack(generation: u64, len: usize, next: usize) -> u64 {
    (generation << (INDEX_BITS + LEN_BITS)) | ((len as u64) << INDEX_BITS) | next as u64
}

fn unpack(word: u64) -> (u64, usize, usize) {
    let mask = |bits: u32| (1u64 << bits) - 1;
    (
        word >> (INDEX_BITS + LEN_BITS),
        ((word >> INDEX_BITS) & mask(LEN_BITS)) as usize,
        (word & mask(INDEX_BITS)) as usize,
    )
}

type Job<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    claim: AtomicU64,
    /// The current job's closure: a `*const Job` on the caller's stack, valid while the
    /// caller waits for the job's items.
    job: AtomicPtr<()>,
    /// Items of the current job finished (or panicked), on a cache line of its own: the
    /// workers spin reading `claim`.
    done: CacheLine<AtomicUsize>,
    threads: usize,
    panicked: AtomicBool,
    sleeping: Mutex<usize>,
    wake: Condvar,
}

impl Shared {
    /// Claims and runs items of `generation` until none is left, a share of those left at a
    /// time: large claims while much is left (few meetings on the claim word), single items
    /// at the end (the threads finish together).
    fn work(&self, generation: u64) {
        loop {
            let word = self.claim.load(Ordering::SeqCst);
            let (current, len, next) = unpack(word);
            if current != generation || next >= len {
                return;
            }
            let end = next + ((len - next) / (2 * self.threads)).max(1);
            // Loaded after seeing `generation` and before a successful claim in it: the
            // caller cannot have moved on to another job in between (it waits for these items).
            let job = self.job.load(Ordering::SeqCst);
            if self
                .claim
                .compare_exchange(
                    word,
                    pack(generation, len, end),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                )
                .is_err()
            {
                continue;
            }
            // SAFETY: the claim succeeded within `generation`, whose caller keeps the closure
            // alive until `done` counts these items.
            let job = unsafe { *job.cast::<Job>() };
            if catch_unwind(AssertUnwindSafe(|| (next..end).for_each(job))).is_err() {
                self.panicked.store(true, Ordering::SeqCst);
            }
            self.done.0.fetch_add(end - next, Ordering::SeqCst);
        }
    }

    fn worker(&self) {
        let mut seen = 0;
        loop {
            let idle_since = Instant::now();
            let mut spins = 0u32;
            let generation = loop {
                let (generation, _, _) = unpack(self.claim.load(Ordering::SeqCst));
                if generation != seen {
                    break generation;
                }
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) && idle_since.elapsed() > SPIN_BEFORE_SLEEP {
                    let mut sleeping = self.sleeping.lock().unwrap_or_else(|e| e.into_inner());
                    *sleeping += 1;
                    while unpack(self.claim.load(Ordering::SeqCst)).0 == seen {
                        sleeping = self.wake.wait(sleeping).unwrap_or_else(|e| e.into_inner());
                    }
                    *sleeping -= 1;
                }
            };
            self.work(generation);
            seen = generation;
        }
    }
}

/// The pool forward passes run in, sized as rayon's global one (`RAYON_NUM_THREADS`, else one
/// thread per core).
pub(crate) fn compute_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("precis-compute-{i}"))
            .build()
            .expect("a thread pool")
    })
}

pub(crate) struct Team {
    shared: Arc<Shared>,
    /// Held by the caller of a job: a second caller (another thread, or a job calling
    /// [`Team::run`]) runs its items alone instead of waiting.
    busy: Mutex<u64>,
}

impl Team {
    fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: CacheLine(AtomicUsize::new(0)),
            threads: threads.max(1),
            panicked: AtomicBool::new(false),
            sleeping: Mutex::new(0),
            wake: Condvar::new(),
        });
        for i in 1..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("precis-team-{i}"))
                .spawn(move || shared.worker())
                .expect("a team thread");
        }
        Self {
            shared,
            busy: Mutex::new(0),
        }
    }

    /// The process's team, with as many threads as the rayon pool the caller runs in.
    pub(crate) fn get() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(rayon::current_num_threads()))
    }

    /// Calls `job(i)` for every `i` in `0..len`, on the team's threads and the caller's.
    pub(crate) fn run(&self, len: usize, job: Job<'_>) {
        let mut generation = match self.busy.try_lock() {
            Ok(generation) => generation,
            // A job panicked on this team before; the claim word is still consistent.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return (0..len).for_each(job),
        };
        if len <= 1 || len >= MAX_ITEMS {
            return (0..len).for_each(job);
        }
        let shared = &*self.shared;
        *generation = *generation % MAX_GENERATION + 1;
        let generation = *generation;
        shared.done.0.store(0, Ordering::SeqCst);
        shared
            .job
            .store(std::ptr::from_ref(&job).cast_mut().cast(), Ordering::SeqCst);
        shared
            .claim
            .store(pack(generation, len, 0), Ordering::SeqCst);
        if *shared.sleeping.lock().unwrap_or_else(|e| e.into_inner()) > 0 {
            shared.wake.notify_all();
        }
        shared.work(generation);
        while shared.done.0.load(Ordering::SeqCst) < len {
            std::hint::spin_loop();
        }
        if shared.panicked.swap(false, Ordering::SeqCst) {
            panic!("a parallel task panicked");
        }
    }

    /// Calls `f` on every item of `items`, spread over the team.
    pub(crate) fn for_each_mut<T: Send>(&self, items: &mut [T], f: impl Fn(&mut T) + Sync) {
        let base = SendPtr(items.as_mut_ptr());
        let len = items.len();
        self.run(len, &|i| {
            assert!(i < len);
            // SAFETY: `run` calls the closure once per index below `len`, so each item is
            // borrowed mutably once, while `items` is borrowed by this call.
            f(unsafe { &mut *base.get().add(i) })
        });
    }
}

#[repr(align(128))]
struct CacheLine<T>(T);

/// A raw pointer that may cross threads: `for_each_mut` hands out each item once.
struct SendPtr<T>(*mut T);
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_across_many_jobs() {
        let team = Team::new(3);
        for len in [0, 1, 2, 7, 1000] {
            for _ in 0..200 {
                let mut items = vec![0u32; len];
                team.for_each_mut(&mut items, |x| *x += 1);
                assert!(items.iter().all(|&x| x == 1), "len {len}");
            }
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let team = Team::new(2);
        let mut items = vec![0u32; 64];
        team.for_each_mut(&mut items, |x| *x += 1);
        std::thread::sleep(SPIN_BEFORE_SLEEP * 3);
        team.for_each_mut(&mut items, |x| *x += 1);
        assert!(items.iter().all(|&x| x == 2));
    }

    #[test]
    fn a_nested_job_runs_on_its_caller() {
        let team = Team::new(2);
        let mut outer = vec![vec![0u32; 8]; 4];
        team.for_each_mut(&mut outer, |inner| team.for_each_mut(inner, |x| *x += 1));
        assert!(outer.iter().flatten().all(|&x| x == 1));
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_team_goes_on() {
        let team = Team::new(2);
        let mut items = vec![0u32; 16];
        let result = catch_unwind(AssertUnwindSafe(|| {
            team.for_each_mut(&mut items, |x| {
                assert!(*x != 0, "item");
            })
        }));
        assert!(result.is_err());
        team.for_each_mut(&mut items, |x| *x += 1);
        assert!(items.iter().all(|&x| x == 1));
    }

    #[test]
    fn the_claim_word_round_trips() {
        assert_eq!(unpack(pack(5, 9496, 17)), (5, 9496, 17));
        let last = MAX_GENERATION;
        assert_eq!(
            unpack(pack(last, MAX_ITEMS - 1, 3)),
            (last, MAX_ITEMS - 1, 3)
        );
    }
}
