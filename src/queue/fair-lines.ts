import type { JobOptions, Queue } from 'bull';
import type { RedisClient } from '../redis/redis.factory';
import type { Publication } from '../common/contracts';

/**
 * QUEUE_FAIRNESS=user: fair turns between users inside one priority band.
 *
 * Key layout, per band queue `B` (`segmentation-p<1..10>`) under the queue's one hash tag `{QUEUE_NAME}`
 * (so every key of every band stays in one Redis Cluster slot, next to Bull's own keys of `B`):
 * - `{Q}:B:fair:u:<userId>` LIST — that user's queued job ids in this band, oldest at the right (LPUSH in, RPOP out);
 * - `{Q}:B:fair:ring`       LIST — the users with at least one queued job in this band, the one whose turn it is at
 *                             the right; a user who got a turn and still has jobs goes back to the left;
 * - `{Q}:B:fair:n`          STRING — how many job ids the band's user lists hold (the `waiting` count, O(1)).
 * Invariant, kept by every script below (each one atomic): a user is in the ring exactly once iff their list is
 * non-empty, and `n` is the sum of the list lengths. The job hash stays Bull's (`{Q}:B:<jobId>`), written with
 * the fields Bull's own addJob writes, so everything after the pop (moveToActive, processJob, locks, retries,
 * stalled check, removal, getJob) is Bull's code unchanged.
 *
 * Jobs that reach Bull's `wait` list anyway — a retry whose backoff is due, a stalled job moved back, jobs added
 * with QUEUE_FAIRNESS=none or before this version — are moved into their user's list (at the back) by the pop,
 * at most {@link MIGRATE_PER_POP} per band and pop, oldest first; the user is the job data's `userId`.
 */
export type Fairness = 'user' | 'none';

/** Re-entries moved from Bull's `wait` list into the user lists per band and pop (bounds the pop's work). */
export const MIGRATE_PER_POP = 100;

/** User key of a job: its data's `userId` (the same string Lua's tostring gives for an integer). */
export const fairUserOf = (data: unknown): string => {
  const uid = (data as { userId?: unknown } | null)?.userId;
  return uid === undefined || uid === null ? '-' : String(uid);
};

/** Lua helper: the user of a job from its Bull hash (`data.userId`), '-' when there is none. */
const UID_OF_LUA = `
local function uidOf(jobKey)
  local raw = redis.call('HGET', jobKey, 'data')
  if raw then
    local ok, d = pcall(cjson.decode, raw)
    if ok and type(d) == 'table' and d.userId ~= nil and d.userId ~= cjson.null then return tostring(d.userId) end
  end
  return '-'
end`;

/**
 * Adds one job: Bull's job hash (as Bull's addJob writes it for a plain FIFO job), the id at the back of its
 * user's list, the user at the back of the ring when the list was empty, the count, and Bull's `waiting`
 * event (wakes an idle slot of every worker). An existing job id is left alone (Bull's custom-id rule).
 * While an admin has paused the band (Bull's meta-paused) no `waiting` event goes out: no worker may take
 * the job, and each event woke a slot of every worker to pop nothing. The resume's own event (Bull's
 * `resumed`, published by the same atomic script that clears meta-paused) wakes every slot instead.
 * KEYS = job hash, user list, ring, count, meta-paused; ARGV = user, job id, name, data, opts (JSON),
 * timestamp, channel.
 */
const FAIR_ADD_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'data', ARGV[4], 'opts', ARGV[5], 'timestamp', ARGV[6], 'delay', '0', 'priority', '0')
if redis.call('LPUSH', KEYS[2], ARGV[2]) == 1 then redis.call('LPUSH', KEYS[3], ARGV[1]) end
redis.call('INCR', KEYS[4])
if redis.call('EXISTS', KEYS[5]) == 0 then redis.call('PUBLISH', ARGV[7], ARGV[2]) end
return 1`;

/**
 * Takes a job out of its user's list (cancel of a queued task); when the list empties, the user leaves the
 * ring. KEYS = user list, ring, count; ARGV = job id, user. Returns how many ids were removed (0: not there).
 */
const FAIR_REMOVE_LUA = `
local removed = redis.call('LREM', KEYS[1], 0, ARGV[1])
if removed > 0 then
  redis.call('DECRBY', KEYS[3], removed)
  if redis.call('LLEN', KEYS[1]) == 0 then redis.call('LREM', KEYS[2], 0, ARGV[2]) end
end
return removed`;

/**
 * The consumer's pop, one call across every band, most urgent first, that also does the work of Bull's
 * `moveToActive(jobId)` (moveToActive-8.lua without the rate limiter, which the bands do not use): so a job
 * is taken and locked in one round trip, and no other slot can take an id between the two.
 * KEYS[1] = the first band's wait key (routes the call to the queue's cluster slot; every band key shares its
 * hash tag, and the others are derived from the band prefixes: `wait`, `active`, `meta-paused`, `stalled`,
 * `priority`, `fair:ring`, `fair:n`, as Bull's and {@link fairKeys} name them). ARGV = mode, lock duration ms,
 * timestamp, then per band its key prefix `{Q}:B:` and its queue's lock token.
 * A band paused by an admin (Bull's meta-paused) is skipped. `none`: Bull's wait list first (RPOPLPUSH, as
 * without fairness). `user`: first move re-entries from `wait` into their users' lists, then the user at the
 * front of the ring gives their oldest job and goes to the back (or leaves when it was their last). Either mode
 * then takes from the user lists, so jobs queued under the other setting are never stranded. The id goes to
 * Bull's `active` list, as BRPOPLPUSH would put it, and is locked with the band's token as Bull's moveToActive
 * does (stalled mark cleared, priority entry removed, active event, `processedOn`). Returns {band index, job id,
 * 1 if taken from a user list else 0, the job hash as HGETALL gives it} or nil.
 */
const FAIR_POP_LUA = `${UID_OF_LUA}
local mode, lockMs, now = ARGV[1], ARGV[2], ARGV[3]
local function activate(base, token, id)
  local job = base .. id
  redis.call('SREM', base .. 'stalled', id)
  redis.call('SET', job .. ':lock', token, 'PX', lockMs)
  redis.call('ZREM', base .. 'priority', id)
  redis.call('PUBLISH', base .. 'active@' .. token, id)
  redis.call('HSET', job, 'processedOn', now)
  return redis.call('HGETALL', job)
end
for b = 0, (#ARGV - 3) / 2 - 1 do
  local base, token = ARGV[4 + b * 2], ARGV[5 + b * 2]
  local wait, active, ring, count = base .. 'wait', base .. 'active', base .. 'fair:ring', base .. 'fair:n'
  -- An empty band (Redis deletes empty lists: no wait list, no ring) costs one command, not three.
  if redis.call('EXISTS', wait, ring) > 0 and redis.call('EXISTS', base .. 'meta-paused') == 0 then
    if mode == 'none' then
      local id = redis.call('RPOPLPUSH', wait, active)
      if id then return {b, id, 0, activate(base, token, id)} end
    else
      for _ = 1, ${MIGRATE_PER_POP} do
        local id = redis.call('RPOP', wait)
        if not id then break end
        local uid = uidOf(base .. id)
        if redis.call('LPUSH', base .. 'fair:u:' .. uid, id) == 1 then redis.call('LPUSH', ring, uid) end
        redis.call('INCR', count)
      end
    end
    for _ = 1, 10 do
      local uid = redis.call('RPOP', ring)
      if not uid then break end
      local list = base .. 'fair:u:' .. uid
      local id = redis.call('RPOP', list)
      if redis.call('LLEN', list) > 0 then redis.call('LPUSH', ring, uid) end
      if id then
        redis.call('DECR', count)
        -- A stale id (its job removed behind the producer's back, finished, or taken by a worker: queued
        -- twice after a loss, the other copy locked) is dropped, never run twice.
        local job = base .. id
        if redis.call('EXISTS', job) == 1 and redis.call('HEXISTS', job, 'finishedOn') == 0
          and redis.call('EXISTS', job .. ':lock') == 0 then
          redis.call('LPUSH', active, id)
          return {b, id, 1, activate(base, token, id)}
        end
      end
    end
  end
end
return nil`;

/**
 * Gives back a job this process took but has not started (QUEUE_FAIRNESS=user): drops its lock if still ours,
 * removes it from `active`, puts it at the head of its user's list and the user at the front of the ring — the
 * turn it had. KEYS = active, lock, ring, count; ARGV = job id, lock token, key prefix `{Q}:B:`.
 */
const FAIR_GIVE_BACK_LUA = `${UID_OF_LUA}
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed > 0 then
  local uid = uidOf(ARGV[3] .. ARGV[1])
  if redis.call('RPUSH', ARGV[3] .. 'fair:u:' .. uid, ARGV[1]) > 1 then redis.call('LREM', KEYS[3], 1, uid) end
  redis.call('RPUSH', KEYS[3], uid)
  redis.call('INCR', KEYS[4])
end
return removed`;

const CMD = {
  add: 'spherosegFairAdd',
  remove: 'spherosegFairRemove',
  pop: 'spherosegFairPop',
  giveBack: 'spherosegFairGiveBack',
} as const;
const LUA: Record<keyof typeof CMD, string> = { add: FAIR_ADD_LUA, remove: FAIR_REMOVE_LUA, pop: FAIR_POP_LUA, giveBack: FAIR_GIVE_BACK_LUA };

type Cmd = (n: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>;
type FairClient = RedisClient & Record<(typeof CMD)[keyof typeof CMD], Cmd>;

/** What fair-lines needs of a Bull 4 queue (`bull` is pinned): its key names, event/lock token and lock duration. */
interface BullKeys {
  keys: Record<'wait' | 'active' | 'meta-paused' | '', string>;
  token: string;
  settings: { lockDuration: number };
}
const bullOf = (q: Queue) => q as unknown as BullKeys;

/** Key prefix of a band's keys, `{Q}:B:` (Bull's `keys['']`). */
const baseOf = (q: Queue) => bullOf(q).keys[''];
export const fairKeys = (q: Queue) => {
  const base = baseOf(q);
  return { ring: `${base}fair:ring`, count: `${base}fair:n`, user: (uid: string) => `${base}fair:u:${uid}` };
};

/** Registers the scripts on a client once (ioredis then runs them by EVALSHA, loading them on NOSCRIPT). */
export function withFairScripts(client: RedisClient): FairClient {
  for (const k of Object.keys(CMD) as Array<keyof typeof CMD>) {
    if (!(CMD[k] in client)) client.defineCommand(CMD[k], { lua: LUA[k] });
  }
  return client as FairClient;
}

/** A job to add to a band's user lists. */
export interface FairJob {
  jobId: string;
  name: string;
  data: unknown;
  opts: JobOptions;
}

/** Arguments of one FAIR_ADD call (as Bull's Job would serialise the job). */
function addArgs(q: Queue, job: FairJob, now: number): Array<string | number> {
  const k = fairKeys(q);
  const uid = fairUserOf(job.data);
  const b = bullOf(q);
  return [
    5,
    `${baseOf(q)}${job.jobId}`,
    k.user(uid),
    k.ring,
    k.count,
    b.keys['meta-paused'],
    uid,
    job.jobId,
    job.name,
    JSON.stringify(job.data),
    JSON.stringify({ attempts: 1, delay: 0, ...job.opts, jobId: job.jobId, timestamp: now }), // Bull's Job defaults
    now,
    `${b.keys.wait}ing@${b.token}`,
  ];
}

/** Adds jobs to the back of their users' lists in band `q`, atomically as one batch. */
/** Adds jobs to band `q` (see {@link fairAddAll}). */
export function fairAdd(client: RedisClient, q: Queue, jobs: FairJob[]): Promise<void> {
  return fairAddAll(client, jobs.map((job) => ({ q, job })));
}

/**
 * Adds jobs (each to its band `q`) and then publishes `publications`, in one round trip: a single call
 * alone, else one MULTI (every band's keys share the queue's hash tag: one Redis Cluster slot).
 */
export async function fairAddAll(
  client: RedisClient,
  jobs: Array<{ q: Queue; job: FairJob }>,
  publications: readonly Publication[] = [],
): Promise<void> {
  const c = withFairScripts(client);
  const now = Date.now();
  if (jobs.length === 1 && publications.length === 0) {
    await c[CMD.add](...(addArgs(jobs[0].q, jobs[0].job, now) as [number, ...string[]]));
    return;
  }
  const multi = c.multi() as unknown as Record<string, Cmd> & {
    publish(channel: string, message: Buffer | string): unknown;
    exec(): Promise<Array<[Error | null, unknown]> | null>;
  };
  for (const { q, job } of jobs) void multi[CMD.add](...(addArgs(q, job, now) as [number, ...string[]]));
  for (const p of publications) multi.publish(p.channel, p.message);
  const res = await multi.exec();
  const failed = res?.find(([err]) => err);
  if (failed) throw failed[0];
}

/** Removes a queued job from its user's list in band `q`; true when it was there. */
export async function fairRemove(client: RedisClient, q: Queue, jobId: string, data: unknown): Promise<boolean> {
  const k = fairKeys(q);
  const uid = fairUserOf(data);
  return Number(await withFairScripts(client)[CMD.remove](3, k.user(uid), k.ring, k.count, jobId, uid)) > 0;
}

/** Whether a job sits in its user's list of band `q` (O(length of that user's list)). */
export async function fairHolds(client: RedisClient, q: Queue, jobId: string, data: unknown): Promise<boolean> {
  const pos = await client.lpos(fairKeys(q).user(fairUserOf(data)), jobId);
  return pos !== null;
}

/**
 * A job's state in band `q`, read in one MULTI (atomic): Bull's lists and sets and the job's user list.
 * Bull's own `getState` asks list after list, so a job moving between them (a pop taking it from `wait`
 * to its user's list to `active`) can be in none of them at each look and read as `stuck`.
 */
export async function fairState(
  client: RedisClient,
  q: Queue,
  jobId: string,
  data: unknown,
): Promise<'completed' | 'failed' | 'delayed' | 'active' | 'waiting' | 'paused' | 'stuck'> {
  const k = (q as unknown as { keys: Record<'completed' | 'failed' | 'delayed' | 'active' | 'wait' | 'paused' | 'meta-paused', string> }).keys;
  const res = await client
    .multi()
    .zscore(k.completed, jobId)
    .zscore(k.failed, jobId)
    .zscore(k.delayed, jobId)
    .lpos(k.active, jobId)
    .lpos(k.wait, jobId)
    .lpos(k.paused, jobId)
    .lpos(fairKeys(q).user(fairUserOf(data)), jobId)
    .exists(k['meta-paused'])
    .exec();
  if (!res) throw new Error('the job state was not read');
  const failed = res.find(([err]) => err);
  if (failed) throw failed[0];
  const [completed, failedAt, delayed, active, wait, paused, inLine, isPaused] = res.map(([, v]) => v);
  if (completed !== null) return 'completed';
  if (failedAt !== null) return 'failed';
  if (delayed !== null) return 'delayed';
  if (active !== null) return 'active';
  if (wait !== null) return 'waiting';
  if (paused !== null) return 'paused';
  if (inLine !== null) return Number(isPaused) === 1 ? 'paused' : 'waiting';
  return 'stuck';
}

/** Jobs held in band `q`'s user lists (O(1)). */
export async function fairCount(client: RedisClient, q: Queue): Promise<number> {
  return Math.max(0, Number((await client.get(fairKeys(q).count)) ?? 0));
}

/**
 * The first ids of band `q`'s user lists in the order the pop takes them (round after round of the ring),
 * positions `start..end` (inclusive, at most 1000 of them): for a dashboard. Reads at most `end + 1` users'
 * lists and at most `end + 1` ids of each.
 */
export async function fairPeek(client: RedisClient, q: Queue, start: number, end: number): Promise<string[]> {
  const k = fairKeys(q);
  const last = Math.min(Math.max(end, start), start + 999);
  const users = (await client.lrange(k.ring, -(last + 1), -1)).reverse(); // front of the ring first
  const lines = await Promise.all(users.map(async (u) => (await client.lrange(k.user(u), -(last + 1), -1)).reverse()));
  const order: string[] = [];
  for (let round = 0; order.length <= last && lines.some((l) => l.length > round); round++) {
    for (const l of lines) if (l.length > round) order.push(l[round]);
  }
  return order.slice(start, last + 1);
}

/** What the consumer's pop over `bands` (most urgent first) in `mode` sends on every call but the timestamp. */
export interface PopPlan {
  key: string;
  mode: Fairness;
  lockDurationMs: number;
  bands: Array<string>;
}

export function fairPopArgs(bands: ReadonlyArray<Queue>, mode: Fairness): PopPlan {
  const first = bullOf(bands[0]); // every band is registered with the same settings (queue.module.ts)
  return { key: first.keys.wait, mode, lockDurationMs: first.settings.lockDuration, bands: bands.flatMap((q) => [baseOf(q), bullOf(q).token]) };
}

/** A job taken and locked by the pop: its band index, id, whether it came from a user list, and its Bull hash. */
export interface PoppedJob {
  band: number;
  jobId: string;
  fromLines: boolean;
  /** The job hash's fields (what Bull's moveToActive returns to build the Job). */
  fields: Record<string, string>;
}

/** The consumer's pop (see FAIR_POP_LUA): the job taken and locked with its band's token, or null. */
export async function fairPop(client: RedisClient, plan: PopPlan): Promise<PoppedJob | null> {
  const hit = (await withFairScripts(client)[CMD.pop](1, plan.key, plan.mode, plan.lockDurationMs, Date.now(), ...plan.bands)) as
    | [number, string, number, string[]]
    | null;
  if (!hit) return null;
  const flat = hit[3] ?? [];
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
  return { band: Number(hit[0]), jobId: String(hit[1]), fromLines: Number(hit[2]) === 1, fields };
}

/** Gives back a job taken from the user lists and not started (see FAIR_GIVE_BACK_LUA). */
export async function fairGiveBack(client: RedisClient, q: Queue, jobId: string, lockKey: string): Promise<number> {
  const k = fairKeys(q);
  return Number(
    await withFairScripts(client)[CMD.giveBack](4, bullOf(q).keys.active, lockKey, k.ring, k.count, jobId, bullOf(q).token, baseOf(q)),
  );
}
