/**
 * Benchmark of the reference segmenter (build first: `npm run build`, then
 * `node dist/bench/segmenter/run.js`). Measures, on 1000×1000 images decoded from PNG files:
 *  - latency: median ms per image on one worker thread (decode + segmentation, as /segment does),
 *    and the segmentation alone;
 *  - throughput with two worker threads against one;
 *  - quality over the seeded synthetic suite and the real sample;
 *  - quality per case family over the held-out split of the hard cluster scenes
 *    (test/fixtures/cluster-scenes.ts: chains, clusters, overlaps, halos, border cuts, empty fields);
 *  - one 4000×3000 image on one worker thread.
 * Writes bench/RESULTS-segmenter.md and prints the same figures as JSON.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SegmenterPool } from '../../src/segmenter/segmenter-pool';
import sharp from 'sharp';
import {
  CLUSTER_TARGETS,
  type FamilyFigures,
  runClusterSuite,
  unmetTargets,
} from '../../test/fixtures/cluster-quality';
import {
  FAMILIES,
  HELD_OUT_SEEDS,
  TUNING_SEEDS,
  generateClusterScene,
  seedOf,
} from '../../test/fixtures/cluster-scenes';
import { greyPng } from '../../test/fixtures/image-files';
import {
  QUALITY_FIRST_SEED,
  type QualitySummary,
  median,
  runQualitySuite,
} from '../../test/fixtures/quality';

const REPO_ROOT = path.resolve(__dirname, '../../..');
const SAMPLE = path.resolve(REPO_ROOT, '../shared/samples/test_spheroid.png');
const WORKER_SCRIPT = path.resolve(__dirname, '../../src/segmenter/segment.worker.js');
const RESULTS_FILE = path.join(REPO_ROOT, 'bench/RESULTS-segmenter.md');
/** Latency and throughput images: the first 5 held-out cluster scenes of each family. */
const LATENCY_PER_FAMILY = 5;
const LATENCY_IMAGES = LATENCY_PER_FAMILY * FAMILIES.length;
const THROUGHPUT_TASKS = 40;
/** Throughput rounds, alternating one and two threads; the best round of each counts (the machine is shared). */
const THROUGHPUT_ROUNDS = 3;
const QUALITY_SCENES = 60;
const MAX_PIXELS = 100_000_000;

interface Figures {
  latency: {
    images: number;
    medianMs: number;
    p90Ms: number;
    medianCpuMs: number;
    p90CpuMs: number;
    medianSegmentOnlyMs: number;
  };
  throughput: {
    tasks: number;
    rounds: number;
    oneThreadPerSecond: number;
    twoThreadsPerSecond: number;
    ratio: number;
    oneThreadCpuMsPerImage: number;
    twoThreadsCpuMsPerImage: number;
  };
  loadAverage: { start: number; end: number };
  quality: QualitySummary;
  sample: { externalPolygons: number; medianProcessingTimeMs: number };
  clusters: FamilyFigures[];
  large: {
    width: number;
    height: number;
    runs: number;
    medianMs: number;
    maxMs: number;
    medianCpuMs: number;
  };
}

async function writeImages(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const family of FAMILIES) {
    for (let k = 0; k < LATENCY_PER_FAMILY; k++) {
      const scene = generateClusterScene(seedOf(HELD_OUT_SEEDS, family, k), family);
      const file = path.join(dir, `${family}-${k}.png`);
      await writeFile(file, await greyPng({ width: scene.width, height: scene.height, data: scene.grey }));
      files.push(file);
    }
  }
  return files;
}

async function withPool<T>(threads: number, use: (pool: SegmenterPool) => Promise<T>): Promise<T> {
  const pool = new SegmenterPool({ threads, script: WORKER_SCRIPT });
  await pool.start();
  try {
    return await use(pool);
  } finally {
    await pool.close();
  }
}

/** CPU ms of the whole process (all threads) spent while `run` ran. */
async function cpuMsOf<T>(run: () => Promise<T>): Promise<{ value: T; cpuMs: number }> {
  const before = process.cpuUsage();
  const value = await run();
  const cpu = process.cpuUsage(before);
  return { value, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * One image at a time on one thread, after a warm-up pass: the worker's own processing_time_ms (wall
 * clock, so it grows when other processes take the CPU) and the process's CPU time per image (the main
 * thread only waits meanwhile, so this is the worker's decode + segmentation, plus GC threads).
 */
async function measureLatency(
  files: string[],
): Promise<{ medianMs: number; p90Ms: number; medianCpuMs: number; p90CpuMs: number }> {
  return withPool(1, async (pool) => {
    for (const file of files.slice(0, 5)) await pool.run(file, MAX_PIXELS);
    const times: number[] = [];
    const cpu: number[] = [];
    for (const file of files) {
      const { value, cpuMs } = await cpuMsOf(() => pool.run(file, MAX_PIXELS));
      times.push(value.processing_time_ms);
      cpu.push(cpuMs);
    }
    times.sort((a, b) => a - b);
    cpu.sort((a, b) => a - b);
    const p90 = Math.floor(times.length * 0.9);
    return { medianMs: median(times), p90Ms: times[p90], medianCpuMs: median(cpu), p90CpuMs: cpu[p90] };
  });
}

interface Throughput {
  perSecond: number;
  /** CPU time of the whole process (all threads) per image. */
  cpuMsPerImage: number;
}

/** Images per second with every task queued at once, and the CPU time they cost. */
async function measureThroughput(files: string[], threads: number): Promise<Throughput> {
  return withPool(threads, async (pool) => {
    await Promise.all(files.slice(0, 2 * threads).map((f) => pool.run(f, MAX_PIXELS)));
    const tasks = Array.from({ length: THROUGHPUT_TASKS }, (_, i) => files[i % files.length]);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await Promise.all(tasks.map((f) => pool.run(f, MAX_PIXELS)));
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    return {
      perSecond: THROUGHPUT_TASKS / seconds,
      cpuMsPerImage: (cpu.user + cpu.system) / 1000 / THROUGHPUT_TASKS,
    };
  });
}

const best = (a: Throughput | undefined, b: Throughput) => (a && a.perSecond >= b.perSecond ? a : b);

async function measureSample(dir: string): Promise<Figures['sample']> {
  const file = path.join(dir, 'sample.png');
  await copyFile(SAMPLE, file);
  return withPool(1, async (pool) => {
    await pool.run(file, MAX_PIXELS);
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await pool.run(file, MAX_PIXELS));
    return {
      externalPolygons: runs[0].polygons.filter((p) => p.type === 'external').length,
      medianProcessingTimeMs: median(runs.map((r) => r.processing_time_ms)),
    };
  });
}

/** A cluster scene enlarged to 4000×3000 (12 Mpx PNG), segmented on one thread after a warm-up. */
async function measureLarge(dir: string): Promise<Figures['large']> {
  const scene = generateClusterScene(HELD_OUT_SEEDS.base + 999, 'cluster');
  const file = path.join(dir, 'large.png');
  await sharp(Buffer.from(scene.grey), { raw: { width: scene.width, height: scene.height, channels: 1 } })
    .resize(4000, 3000, { fit: 'fill' })
    .png()
    .toFile(file);
  return withPool(1, async (pool) => {
    await pool.run(file, MAX_PIXELS);
    const times: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { value, cpuMs } = await cpuMsOf(() => pool.run(file, MAX_PIXELS));
      times.push(value.processing_time_ms);
      cpu.push(cpuMs);
    }
    return {
      width: 4000,
      height: 3000,
      runs: times.length,
      medianMs: median(times),
      maxMs: Math.max(...times),
      medianCpuMs: median(cpu),
    };
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'segmenter-bench-'));
  try {
    const loadAtStart = loadavg()[0];
    const files = await writeImages(dir);
    const latency = await measureLatency(files);
    let one: Throughput | undefined;
    let two: Throughput | undefined;
    for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
      one = best(one, await measureThroughput(files, 1));
      two = best(two, await measureThroughput(files, 2));
    }
    if (!one || !two) throw new Error('no throughput round ran');
    const quality = await runQualitySuite(QUALITY_SCENES);
    const sample = await measureSample(dir);
    const clusters = await runClusterSuite({ split: 'held-out', perFamily: HELD_OUT_SEEDS.perFamily });
    const large = await measureLarge(dir);
    const figures: Figures = {
      latency: { images: LATENCY_IMAGES, ...latency, medianSegmentOnlyMs: quality.medianSegmentMs },
      throughput: {
        tasks: THROUGHPUT_TASKS,
        rounds: THROUGHPUT_ROUNDS,
        oneThreadPerSecond: one.perSecond,
        twoThreadsPerSecond: two.perSecond,
        ratio: two.perSecond / one.perSecond,
        oneThreadCpuMsPerImage: one.cpuMsPerImage,
        twoThreadsCpuMsPerImage: two.cpuMsPerImage,
      },
      loadAverage: { start: loadAtStart, end: loadavg()[0] },
      quality,
      sample,
      clusters,
      large,
    };
    process.stdout.write(JSON.stringify(figures, null, 2) + '\n');
    process.stdout.write(familySummary(clusters));
    await writeFile(RESULTS_FILE, report(figures));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Profile of `segmentGrey` (not re-measured by this script: `node --cpu-prof` and phase timers on 45
 * tuning scenes, 5 per family, 2026-12-06, machine loaded by other work).
 */
const WHERE_THE_TIME_GOES = `### Where the time goes (segmentation alone, profiled 2026-12-06 on a loaded machine)

Issue 23, second round (\`node --cpu-prof\`, 200 µs sampling, \`segmentGrey\` on the first 5 tuning scenes of
each of the 10 families, 3 passes, the same script on the code before and after; the profiler inflates
the times, so read the shares):

| phase of \`segmentGrey\` | before: ms / share | after: ms / share |
|---|---|---|
| both watershed splits (flooding, ellipse boundary refinement, shape trials) | 20.4 / 32 % | 20.4 / 37 % |
| second threshold per object (\`rethreshold\`: its mask cleaning, the threshold map's dilation) | 9.9 / 16 % | 5.4 / 10 % |
| first threshold and mask cleaning (\`segmentForeground\`) | 8.6 / 14 % | 2.8 / 5 % |
| tracing (each region's opening, contour at full resolution, features) | 8.2 / 13 % | 7.0 / 13 % |
| labelling (OpenCV connected components, twice) | 5.7 / 9 % | 5.6 / 10 % |
| illumination flattening (after: with the illumination fit and the padded closing) | 5.7 / 9 % | 7.8 / 14 % |
| object thresholds, distance transforms, the rest | 5.0 / 8 % | 5.8 / 11 % |
| **all** | 63.6 | 54.8 |

Where it went: the binary mask morphology (the openings of both mask cleanings and of each region's
outline), 18 ms per image through OpenCV.js calls (about 1 ms per 3×3 pass on the 500×500 working
image), now runs 32 pixels to a machine word (\`binary-morph.ts\`, the same pixels: a spec compares it with
the OpenCV calls for radii 0–20); the flooding skips the union-find look-ups where a neighbour carries the
best basin already. The background fix of this round (a quadratic illumination fit) added about 2 ms and
was brought to under 1 ms. Polygons before and after the speed changes: byte-identical on all 240 held-out
cluster scenes and on the real sample. Interleaved A/B in one process (the same 50 tuning scenes, 2 × each
version, process CPU time of \`segmentGrey\`, medians): before issue 23's second round 41.4 ms, with the
background fix 44.0 ms, after 31.6 ms.

Outside \`segmentGrey\`, the decode (sharp) was the largest cost: 26.4 ms CPU per 1000×1000 RGB PNG, of
which libvips' colour-to-grey conversion about 8 ms. An 8-bit grey image, or an RGB one whose channels are
all equal (the benchmark's PNGs, the real sample), without alpha or colour profile, is now taken as
decoded (the conversion maps (v, v, v) to v, so the pixels are the same: a spec checks it against the
full conversion): 17.5 ms. The service's figure, one worker thread, decode + segmentation, process CPU
time, the two builds' workers alternating image by image on the same 50 tuning PNGs (3 rounds, medians):
before 84.3 ms, after 68.4 ms (p90 127.5 → 111.1). Earlier runs of this file measured 155 ms for the
code before: that run's machine was more loaded (its one-thread throughput was 3.6 images/s), so compare
the figures of one run only. What remains is the watershed splits (a third of \`segmentGrey\`), tracing,
labelling and flattening, and the PNG decode itself.

Before issue 23 (\`--cpu-prof\`, share of \`segmentGrey\`): the two watershed splits 35 % (flooding, the ellipse
boundary refinement run up to 10 times on every split component in both splits, the shape trials),
morphology 20 % (iterated 3×3 OpenCV erosions and dilations: about 1 ms per call on a 500×500 working image),
tracing 12 % (its opening of each region and the contour at full resolution), then illumination
flattening, thresholds, labelling. Changes, each compared A/B in one process, image by image, on cached
tuning scenes (process CPU time of \`segmentGrey\`, medians):
- same output, less work: typed arrays instead of per-pixel map lookups and array destructuring in the
  boundary refinement and the shape trials, one record per decided basin pair instead of one per boundary
  pixel, the 3×3 squares of each octagonal disc applied as one separable rectangle (same pixels);
- the first (rough) split, which only feeds each object's threshold, no longer refines its boundaries
  (same tuning figures: mean 0.9512 both);
- the working size stays 500 px on the longer side. Same code at three sizes, 260 tuning scenes:
  500 px 99.5 ms, 450 px 86.4 ms, 400 px 70.7 ms; extended tuning split mean IoU 0.9550 / 0.9541 / 0.9521,
  worst 0.723 / 0.722 / 0.675, no extra polygon at any size; but on the held-out split 450 and 400 px
  cut held-out cluster seed 702021 wrongly (worst 0.40, an extra polygon: the existing cluster test
  failed), so the smaller sizes were dropped. The original code measured 125.8 ms against 70.9 ms for
  the 400 px build in one interleaved run; at 500 px these changes save about a fifth (99.5 against an
  estimated 125).

Per image at 400 px (wall ms of each phase, 45 tuning scenes; 500 px has 1.56 × the pixels):
illumination flattening 11.9, first threshold and cleaning 7.9, labelling 3.0 + 2.9, distance
transforms 1.6, rough split 10.7, object thresholds and second threshold 10.6, final split 18.2
(flooding 5.8, boundary refinement 5.9, shape trials 3.9, junctions 1.9), tracing 8.3; 75 ms in all.
Process CPU time was 108 ms per image in that run: V8's garbage-collection and compiler threads add
about a third to the main thread's time, and the CPU figures in this file include them.`;

/** Issue 23's extra polygon on a vignetted corner: cause and fix (measured 2026-12-06, not re-measured here). */
const BACKGROUND_NOTE = `### Dark corners (issue 23)

Held-out \`unequal\` seed 708001 (and tuning 608065) gave a polygon on a vignetted image corner: the
background closing in \`preprocess.ts\` cannot reach beyond the border, so where the light falls towards a
corner it only sees the brighter inside and overestimates the corner's background; the corner then
thresholds as an object. Repeating the edge cells beyond the border fixed that but made a spheroid cut by
the border look endless, and it vanished into the background (held-out border 705001). Now a quadratic
illumination surface is fitted by least squares to the background cells of the coarse grid (cells at most
12 % darker than the estimate, first the closing, then the surface, refitted four times so that the
corner cells the closing overestimated come back in; objects are far darker and never count) and the grid
is padded with it beyond the border before the closing: a falling slope keeps falling, a cut body is no
background cell and does not bend the surface. The \`vignette\` family was added to test both at once. On
its 15 tuning scenes the old background gave 2 extra polygons, the new none (none either on 40 further tuning
scenes of \`vignette\` and \`unequal\`); on held-out seeds \`unequal\` went from 1 extra polygon to 0 and
\`vignette\` from 2 to 0, every other family unchanged or slightly better (halo 0.918 → 0.919, border
0.974 → 0.975). The real sample keeps its two spheroids; it is itself darker on its left side (the
closing overestimated its background there by up to 11 grey levels), so its outlines moved by 6 pixels
each (IoU with the old outlines 0.9998).`;

const f1 = (v: number) => v.toFixed(1);
const f3 = (v: number) => v.toFixed(3);

function report(f: Figures): string {
  const cpu = cpus();
  return `# Reference segmenter benchmark

Produced by \`bench/segmenter/run.ts\` on ${new Date().toISOString().slice(0, 10)}: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, Node ${process.version}.
The machine was shared with other work: 1-minute load average ${f.loadAverage.start.toFixed(1)} at the start and
${f.loadAverage.end.toFixed(1)} at the end of the run, so the timings are upper bounds and the thread scaling is a lower bound.

## Commands

\`\`\`sh
npm run build                                # compiles src/, bench/ and test/fixtures/ to dist/
node dist/bench/segmenter/run.js             # this benchmark; rewrites bench/RESULTS-segmenter.md
npx jest --selectProjects segmenter          # the segmenter test suite (quality gates included)
\`\`\`

## Speed (1000×1000 PNG images: ${f.latency.images} held-out cluster scenes, ${LATENCY_PER_FAMILY} of each family)

| figure | value | target |
|---|---|---|
| median CPU ms per image, one worker thread (PNG decode + segmentation; process CPU time) | ${f1(f.latency.medianCpuMs)} | ≤ 100: ${f.latency.medianCpuMs > 100 ? '**NOT met**' : 'MET'} |
| 90th percentile CPU ms per image, one worker thread | ${f1(f.latency.p90CpuMs)} | |
| median wall ms per image (the worker's processing_time_ms; grows with the machine's load) | ${f1(f.latency.medianMs)} | |
| 90th percentile wall ms per image | ${f1(f.latency.p90Ms)} | |
| median ms of the segmentation alone (no decode; the first generator's 60 scenes) | ${f1(f.latency.medianSegmentOnlyMs)} | |
| throughput, 1 thread (images/s, ${f.throughput.tasks} queued, best of ${f.throughput.rounds}) | ${f1(f.throughput.oneThreadPerSecond)} | |
| throughput, 2 threads (images/s, best of ${f.throughput.rounds}) | ${f1(f.throughput.twoThreadsPerSecond)} | |
| 2 threads / 1 thread, wall clock | ${f.throughput.ratio.toFixed(2)} | ≥ 1.7${f.throughput.ratio < 1.7 ? ' (**NOT met**)' : ''} |
| CPU ms per image (all threads), 1 thread / 2 threads | ${f1(f.throughput.oneThreadCpuMsPerImage)} / ${f1(f.throughput.twoThreadsCpuMsPerImage)} | |

The workers share nothing but the queue, so an image costs the same CPU time on one or two threads; on a
loaded machine the wall-clock ratio also depends on how much CPU the other processes left. The latency
target is judged on CPU time because the machine is shared (wall time there measures the other work too).

${WHERE_THE_TIME_GOES}

## Quality

Synthetic suite: ${f.quality.scenes} seeded scenes (seeds ${QUALITY_FIRST_SEED}–${QUALITY_FIRST_SEED + f.quality.scenes - 1}), ${f.quality.touchingPairScenes} with a touching pair,
${f.quality.spheroids} spheroids in all, with debris, bubbles (some leaning on a spheroid), a fibre, loose and faint cells,
uneven illumination and noise.

| figure | value | target |
|---|---|---|
| mean per-spheroid IoU (best match) | ${f3(f.quality.meanSpheroidIoU)} | ≥ 0.90 |
| lowest per-spheroid IoU | ${f3(f.quality.minSpheroidIoU)} | |
| mean whole-image IoU | ${f3(f.quality.meanImageIoU)} | ≥ 0.93 |
| extra polygons (matching no spheroid) | ${f.quality.extras.length} | 0 |
| of which on debris, a bubble or a fibre | ${f.quality.extras.filter((e) => e.covers !== 'background').length} | 0 |
| real sample \`test_spheroid.png\`: external polygons | ${f.sample.externalPolygons} | 2 |
| real sample: median processing_time_ms of 5 (one thread; an RGB PNG, slower to decode) | ${f.sample.medianProcessingTimeMs} | |

## Hard cluster scenes, held-out seeds (per case family)

\`test/fixtures/cluster-scenes.ts\`, written apart from the generator above: 1000×1000 scenes of chains
and compact clusters of 3–6 spheroids touching or overlapping by up to 15 % of the smaller radius,
overlapping pairs of unrelated sizes, radii 40–250 px in one image, axis ratios 0.6–1, rough rims with
stuck and loose cells, wide granular invasion halos (with a paler spheroid inside some), spheroids cut by
the border, empty fields; and issue 23's families: \`contact\`, chains of 3–6 mid-grey spheroids with
darker cores (radius 70–180 px, axis ratio 0.8–1) at random angles, which may bend back on themselves,
each touching or overlapping the one before (centre distance 0.90–1.02 of the radii sum), \`unequal\`,
overlapping pairs of clearly different sizes at the same distances (where bodies overlap their optical
densities add: the overlap is darker than either body), and \`vignette\`, strong vignetting (35–55 % of
the light lost at the corners) with a tilt, and spheroids cut by the border, often in a dark corner. Debris, bubbles and fibres everywhere; uneven
illumination, blur and noise from clean to poor. Tuning only ever looked at seeds ${TUNING_SEEDS.base}+ (${TUNING_SEEDS.perFamily} per family); these figures are the
held-out seeds ${HELD_OUT_SEEDS.base}+ (${HELD_OUT_SEEDS.perFamily} per family), measured in this run. Times per family are
\`segmentGrey\` alone in the benchmark's main thread (no decode), between evaluations that allocate
heavily; they are process CPU time, garbage collection included; the worker-thread latency above is the
service's figure.

| family | images | spheroids | mean IoU | worst IoU (seed) | matched (IoU ≥ 0.5) | extra polygons | foreground IoU | median / max CPU ms | mean confidence (matched) | targets |
|---|---|---|---|---|---|---|---|---|---|---|
${f.clusters.map(familyRow).join('\n')}

Targets (each family and all together): mean ≥ ${CLUSTER_TARGETS.meanIoU}, matched ≥ ${CLUSTER_TARGETS.matched}, worst ≥ ${CLUSTER_TARGETS.worstIoU}, no extra polygon; foreground IoU ≥ 0.95 over all.
In the halo family, pale spheroids sitting in a halo get a mean confidence of ${fmtOpt(haloOf(f).meanConfidencePale)}, the dense ones ${fmtOpt(haloOf(f).meanConfidenceDense)}.
${extrasLine(f)}

${unmetLine(f)}

${BACKGROUND_NOTE}

## Large image

| figure | value | target |
|---|---|---|
| ${f.large.width}×${f.large.height} PNG, one thread, median CPU ms of ${f.large.runs} (decode + segmentation) | ${f1(f.large.medianCpuMs)} | ≤ 1000: ${f.large.medianCpuMs > 1000 ? '**NOT met**' : 'MET'} |
| the same, median / max processing_time_ms (wall) | ${f.large.medianMs} / ${f.large.maxMs} | |
`;
}

function familyRow(c: FamilyFigures): string {
  const name = c.family === 'all' ? '**all**' : c.family;
  const worst = c.worst ? `${f3(c.worst.iou)} (${c.worst.seed})` : '—';
  const spheroidCells = c.spheroids ? `${f3(c.meanIoU)} | ${worst} | ${f3(c.matched)}` : '— | — | —';
  return `| ${name} | ${c.images} | ${c.spheroids} | ${spheroidCells} | ${c.extraPolygons} | ${f3(c.foregroundIoU)} | ${f1(c.medianMs)} / ${f1(c.maxMs)} | ${c.spheroids ? c.meanConfidenceMatched.toFixed(2) : '—'} | ${metCell(c)} |`;
}

function metCell(c: FamilyFigures): string {
  const unmet = unmetTargets(c);
  return unmet.length ? `**NOT met**: ${unmet.join('; ')}` : 'MET';
}

/** The per-family figures as plain lines for the console, each with MET or NOT met. */
function familySummary(clusters: FamilyFigures[]): string {
  const lines = clusters.map((c) => {
    const iou = c.spheroids
      ? `mean ${f3(c.meanIoU)} worst ${f3(c.worstIoU)} matched ${f3(c.matched)}`
      : 'no spheroids';
    const unmet = unmetTargets(c);
    return `${c.family.padEnd(8)} ${String(c.images).padStart(3)} images ${String(c.spheroids).padStart(4)} spheroids  ${iou}  extra ${c.extraPolygons}  ${unmet.length ? `NOT met (${unmet.join('; ')})` : 'MET'}`;
  });
  return `\nHeld-out cluster scenes by family (targets: mean ≥ ${CLUSTER_TARGETS.meanIoU}, matched ≥ ${CLUSTER_TARGETS.matched}, worst ≥ ${CLUSTER_TARGETS.worstIoU}, no extra polygon):\n${lines.join('\n')}\n`;
}

const haloOf = (f: Figures) => f.clusters.find((c) => c.family === 'halo') as FamilyFigures;
const fmtOpt = (v: number | null) => (v === null ? '—' : v.toFixed(2));

function extrasLine(f: Figures): string {
  const all = f.clusters.find((c) => c.family === 'all');
  if (!all || all.extras.length === 0) return 'No extra polygon.';
  const list = all.extras.map(
    (e) => `seed ${e.seed} (on ${e.covers}, confidence ${e.confidence.toFixed(2)})`,
  );
  return `Extra polygons: ${list.join(', ')}.`;
}

/** The held-out targets this run does not meet, per family and over all families, in plain words. */
function unmetLine(f: Figures): string {
  const unmet = f.clusters.flatMap((c) => unmetTargets(c).map((u) => `${c.family}: ${u}`));
  const all = f.clusters.find((c) => c.family === 'all');
  if (all && all.foregroundIoU < 0.95) unmet.push(`all: foreground IoU ${f3(all.foregroundIoU)} < 0.95`);
  return unmet.length
    ? `**Not met on the held-out split:** ${unmet.join('; ')}.`
    : 'Every held-out target is met, in every family.';
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
