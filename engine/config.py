"""Defaults, limits and tolerances: the one place where pixgate's numbers live.

Every other module (CLI, pipeline, tests, benchmarks) imports these names instead of
repeating a literal, so changing a default is a one-line change that the docs and the
tests follow.
"""

from __future__ import annotations

from typing import Final

#: LPIPS head version shipped inside the `lpips` package that pixgate uses.
LPIPS_HEAD_VERSION: Final = "0.1"

#: Pairs per device batch when --batch-size is not given. On a CPU larger batches do not
#: raise throughput (the convolutions already use every core), on a GPU they do.
DEFAULT_BATCH_SIZE_CPU: Final = 4
DEFAULT_BATCH_SIZE_CUDA: Final = 32

#: Upper bound on the pixels of one side of one batch (N * H * W): a batch of large images
#: is split so activations fit in memory whatever --batch-size says.
MAX_BATCH_PIXELS: Final = 32 * 1024 * 1024

#: Decoded pairs held in memory waiting for a full bucket, as a multiple of the batch size.
#: Together with the in-flight decode limit this bounds memory whatever the number of pairs.
PENDING_BATCHES: Final = 3

#: ... and at most this many baseline pixels of them: with large images a few pairs fill
#: it, so waiting pairs cannot add more than a batch's worth of decoded pixels to the
#: scoring process's memory, whatever the batch size.
PENDING_PIXELS: Final = MAX_BATCH_PIXELS

#: Decode tasks in flight per worker: enough to hide scheduling gaps, few enough that the
#: decoded images waiting to be collected stay a small, fixed amount of memory.
INFLIGHT_PER_WORKER: Final = 4

#: Longest time one pair may take to decode, seconds: past it the worker is stopped and
#: the pair is an error row. A 40 MP PNG decodes in a few seconds on the CI machine; a
#: hostile progressive JPEG of tens of thousands of scans would take hours.
DECODE_TIMEOUT_S: Final = 120.0

#: How much lower the decode workers run than the scoring process (POSIX niceness): on a
#: machine whose cores all score and decode, the batch being measured is what every pair
#: waits on, and decoding ahead of it can wait (benchmarks.checks_cost shows the effect
#: on a small CPU); where cores are idle it changes nothing. At the smallest share the
#: scheduler then gives a worker, a 40 MP PNG still decodes inside `DECODE_TIMEOUT_S`,
#: and the workers have every core to themselves whenever the scorer waits for them.
DECODE_WORKER_NICE: Final = 10

#: Threads that hash the files of the rows `--resume` would keep (hashlib releases the
#: GIL on large buffers): enough to keep a local disk or an object store busy, few enough
#: that a resume on a shared CI box does not take every core before scoring starts.
RESUME_HASH_THREADS: Final = 4

#: Where decode workers leave decoded pixels for the scoring process (a RAM-backed
#: filesystem): only the file's name crosses the pipe, and the scorer maps the file
#: instead of copying and unpickling the pixels. That halves the scoring process's CPU
#: time per pair for receiving and batching (`benchmarks/transport.py`: 3.0 against 6.4
#: ms per 1024x1024 pair on the CI machine), which a GPU box's main thread is short of.
#: Without it (not Linux, full, not writable) pixels travel through the pipe. Files are
#: created exclusively (O_EXCL, no symlink followed) with mode 0600, and the directory's
#: sticky bit keeps other users from replacing them.
SHARED_MEMORY_DIR: Final = "/dev/shm"  # noqa: S108

#: Decompression-bomb limit (width * height). 40 MP is above an 8K frame (33 MP), far below
#: what a hostile 30 kB PNG can declare. It also bounds the scoring process's memory: a
#: pair costs about 160 bytes per pixel while it is scored (`SCORER_BYTES_PER_PIXEL`), so
#: at 100 MP a single 236 kB PNG could take 16 GB.
DEFAULT_MAX_PIXELS: Final = 40_000_000
#: Largest `--max-pixels` accepted: at about 160 bytes per pixel scored a larger image
#: could not be held by any machine pixgate runs on, and the time limits scaled by the
#: setting (`DECODE_TIMEOUT_S`) would overflow the system's timers.
MAX_PIXELS_CEILING: Final = 2**31
#: Largest `--batch-size`, `--workers` and `--ocr-workers`: far above what a GPU's memory
#: or a machine's cores use, low enough that no count sizes a buffer absurdly.
BATCH_SIZE_MAX: Final = 4096
WORKERS_MAX: Final = 256
#: Longest time any option in seconds takes (a week, longer than any CI job): a larger or
#: infinite number would overflow the system's timers deep inside a run.
SECONDS_OPTION_MAX_S: Final = 7 * 24 * 3600.0

#: Bound on the scoring process's peak per pixel of the pair being scored (LPIPS
#: activations of both images, the kernels' per-pixel terms, registration's spectra, the
#: local structure's tiles, the decoded pixels), above its start-up footprint. Measured
#: for AlexNet on a 2-core AMD EPYC (AVX-512) by tests/scoring/test_score.py: about 160
#: bytes per pixel with registration and local structure (104 before them on an AVX2
#: EPYC, `benchmarks/score_memory.py`); the bound leaves room for other CPUs' convolution
#: workspaces. docs/score.md states it; tests/scoring/test_score.py checks a run stays under it.
SCORER_BYTES_PER_PIXEL: Final = 192

#: Most scans a JPEG may hold: each scan is a pass over the whole image, so a small
#: progressive file of tens of thousands of scans decodes for hours. Encoders write ten or
#: so (libjpeg's progression) and optimisers a few dozen; embedded thumbnails add a few.
JPEG_MAX_SCANS: Final = 100

#: Largest image file read under a pixel limit, per allowed pixel: 8 bytes is a 16-bit
#: RGBA pixel stored uncompressed, the most any supported format needs; plus room for
#: metadata (ICC profiles, EXIF, text chunks). A larger file is refused unread.
IMAGE_FILE_BYTES_PER_PIXEL: Final = 8
IMAGE_FILE_OVERHEAD_BYTES: Final = 16 * 1024 * 1024

#: Background that transparent pixels are composited over before LPIPS (RGB, 0..255):
#: the image as it looks on a white page. The alpha channel itself is compared separately.
ALPHA_BACKGROUND: Final = (255, 255, 255)

#: Environment variable choosing the image decoders, and its values: `auto` decodes
#: 8-bit RGB/RGBA PNG with libspng and RGB JPEG with libjpeg-turbo through imagecodecs
#: (1.3-1.6x faster than Pillow per image, the same pixels; benchmarks/decoders.py),
#: everything else with Pillow; `pillow` decodes everything with Pillow.
DECODER_ENV: Final = "PIXGATE_DECODER"
DECODERS: Final = ("auto", "pillow")

#: Resampling filter used when the candidate's size differs from the baseline's.
RESIZE_FILTER: Final = "bicubic"

#: File extensions (lower case) that take part in pairing. Files with other extensions are
#: counted and reported, never scored.
IMAGE_EXTENSIONS: Final = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp"})

#: Largest text input read whole (manifests, prompts files, verdicts, staging plans), bytes:
#: a 100,000-pair manifest is about 30 MB; anything far beyond is refused, not read.
TEXT_INPUT_MAX_BYTES: Final = 256 * 1024 * 1024

#: Seconds allowed for connecting to and reading from the weights server.
DOWNLOAD_TIMEOUT_S: Final = 20.0

#: Rows listed in the end-of-run summary when pairs are not ok.
SUMMARY_MAX_PROBLEMS: Final = 20

# --- tolerances used by the tests (kept here so a reader finds every bound in one file) ---

#: |pixgate - lpips package| in float32 on CPU. Both compute the same graph; the difference
#: comes only from summation order (one 1x1 conv vs. a weighted channel sum, batched
#: backbone passes), which stays orders of magnitude below this.
LPIPS_PARITY_ATOL: Final = 1e-4

#: LPIPS precisions: `auto` (the default) picks bfloat16 where the hardware runs it
#: natively and float32 elsewhere (pixgate.scoring.scorer.choose_precision); `float32`
#: gives bit-for-bit comparable runs anywhere; `bfloat16` autocasts the backbone and
#: heads (kernels stay float32). bfloat16 is several times faster on CPUs with AMX and on
#: GPUs with tensor cores, and several times slower on CPUs that only emulate it (AVX2).
PRECISIONS: Final = ("auto", "float32", "bfloat16")
DEFAULT_PRECISION: Final = "auto"

#: CPU feature flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic: AMX tiles, or
#: AVX-512 BF16 instructions.
BF16_CPU_FLAGS: Final = ("amx_bf16", "avx512_bf16")

#: |LPIPS in bfloat16 - LPIPS in float32| allowed: the bound reduced precision must stay
#: within to be offered at all (tests/scoring/test_models.py measures it on varied pairs).
REDUCED_PRECISION_ATOL: Final = 2e-3

#: Same pair, different batch sizes. Convolution kernels may pick other blockings for other
#: batch shapes; the resulting float32 rounding is far below this bound.
BATCH_INVARIANCE_ATOL: Final = 1e-5

#: Longest time finished rows wait in memory before they are flushed to the journal. Rows
#: are also flushed whenever a full batch's worth is waiting.
JOURNAL_FLUSH_S: Final = 0.5

#: Two ICC profiles describe the same colour space when every colour of a test grid,
#: sent through each to 8-bit sRGB, lands within this many levels. lcms2's 8-bit
#: rounding and a tabulated vs. parametric sRGB curve differ by 1 level; Rec.709 vs. sRGB
#: (same primaries, other curve) differ by 16, Adobe RGB vs. sRGB by over 100.
ICC_MATCH_LEVELS: Final = 2

#: Alpha at or above this value counts as opaque (colour statistics, alpha IoU).
OPAQUE_ALPHA: Final = 128

#: Mean Sobel magnitude (luma 0..1) below which a baseline has no edges to preserve; its
#: `edge_preservation` is then 1. Far below one grey level of gradient (1/255 ~ 0.004).
EDGE_FLAT_MEAN: Final = 1e-6

#: Share of opaque pixels whose CIEDE2000 is at or below `delta_e_p95`.
DELTA_E_QUANTILE: Final = 0.95

#: Image samples (pixels) per degree of visual angle at which S-CIELAB
#: (pixgate.scoring.scielab) filters: the viewing condition of a reviewer at a desktop
#: screen, pixels shown 1:1 at about 100 ppi from about 70 cm (2 x 70 cm x tan(0.5 deg)
#: = 1.22 cm = 48 px per degree), or a 1024 px poster seen across about 20 degrees. Closer
#: viewing (more per degree) blurs less and counts more grain as colour change; 50 errs
#: on that side of the usual 40-45 of office screens.
SCIELAB_SAMPLES_PER_DEGREE: Final = 50.0
#: Longest side, pixels, at which a run computes S-CIELAB: a larger image is area-averaged
#: by the smallest whole factor k that fits and filtered at `SCIELAB_SAMPLES_PER_DEGREE`
#: / k, which is the same picture seen from k times as far. The filter is a low-pass
#: (wider still for colour than for lightness), so what it keeps survives the averaging,
#: and a 480 x 600 pair costs a few milliseconds instead of about a hundred.
SCIELAB_WORK_SIDE: Final = 256

#: OpenMP wait policy the scoring process runs with (`OMP_WAIT_POLICY`, unless the
#: environment sets it): "PASSIVE", so that torch's and the kernels' thread pools, which
#: take turns on the same cores batch after batch, never spin while the other works.
#: benchmarks/checks_cost.py times whole runs with it.
OMP_WAIT_POLICY: Final = "PASSIVE"

#: `hue_shift` (pixgate.scoring.colour): pixels count when their chroma is at least this
#: in both images (C*; greys have no hue to turn, and near them a little noise turns it
#: anywhere), in `HUE_SECTORS` sectors of the baseline's hue, a sector when it holds at
#: least `HUE_SECTOR_MIN_SHARE` of the counted pixels (a few stray pixels of a colour are
#: not a colour of the picture).
HUE_MIN_CHROMA: Final = 10.0
HUE_SECTORS: Final = 6
HUE_SECTOR_MIN_SHARE: Final = 0.02

# --- registration and local structure (pixgate.scoring.registration, .metrics) ---

#: Largest whole-pixel shift (either axis) the metrics undo before comparing: a re-render
#: that moves everything by a few pixels is the same picture. Beyond it the content has
#: moved, which `shift_x` / `shift_y` record for a rule to bound.
REGISTRATION_ALIGN_MAX_PX: Final = 4
#: Stretches searched, either way, about the image centre: past a tenth the content no
#: longer overlaps enough of itself for the profile comparison to mean anything, and
#: `aspect_ratio_delta` or the other metrics see such changes anyway.
REGISTRATION_SCALE_RANGE: Final = 0.12
#: Coarse and fine steps of the scale search. The fine step is well under the 1 % stretch
#: a geometry rule must catch, so the estimate's own rounding cannot decide it.
REGISTRATION_SCALE_STEP: Final = 0.005
REGISTRATION_SCALE_FINE_STEP: Final = 0.0005
#: Shortest side, pixels, along which a scale is estimated: a 1 % stretch moves the outer
#: edges of a shorter image by under a pixel, where JPEG's blocks and antialiasing move
#: the edge profile as much (a 48 px thumbnail re-encoded reads as a 1 % stretch).
REGISTRATION_SCALE_MIN_SIDE: Final = 200
#: Share of a pair's pixels in ignore regions above which no scale is estimated: the
#: regions are filled flat in both images, and the borders of a large one shape the edge
#: profiles as much as the content does (a band over three quarters of a jittered poster
#: read as a 1 % stretch); a box over a timestamp or a logo does not.
REGISTRATION_SCALE_MAX_IGNORED: Final = 0.25
#: Coefficient of variation an edge profile needs for its scale to be estimated: a flat
#: image, or noise alone, gives profiles that vary by far less.
REGISTRATION_MIN_STRUCTURE: Final = 0.2
#: How far, pixels, an edge may have moved and still count as kept by `structure_worst`
#: (the other image's magnitudes are dilated by a square of side 2r + 1): text moved by a
#: pixel or two against an unmoved background, or antialiased otherwise, is the same
#: text; a blur lowers the edges' strength wherever they are, and text set smaller moves
#: its glyphs further along the line.
STRUCTURE_TOLERANCE_PX: Final = 2
#: Side of the tiles `structure_worst` is judged on, pixels (tiles overlap by half): about
#: a line of small print high, so one blurred line or one changed word is most of a tile.
STRUCTURE_TILE_PX: Final = 32
#: Sobel magnitude (luma 0..1; a sharp step of height h gives 4h) below which a pixel's
#: gradient is noise, not structure: grain and sensor noise of a few levels stay below it,
#: the faintest text worth reading (a step of a tenth) is far above.
STRUCTURE_NOISE_FLOOR: Final = 0.15
#: Summed Sobel magnitude above the floor a tile needs to count: about the outline of one
#: small glyph at full contrast. Tiles with less hold no structure to lose, and their share
#: swings on a faint colour edge that JPEG's chroma subsampling moves by a pixel.
STRUCTURE_TILE_MIN_EDGE: Final = 24.0
#: A candidate whose share of transparent pixels is below this share of the baseline's has
#: been flattened (`alpha_flattened`).
ALPHA_FLATTENED_SHARE: Final = 0.1
#: The baseline needs at least this share of transparent pixels for `alpha_flattened` to
#: mean anything (an alpha channel with a stray transparent pixel is not a cut-out).
ALPHA_CUTOUT_MIN_SHARE: Final = 0.005

# --- gate ---

#: Verdict thresholds on the weighted rule score (0..100; pass = 1, marginal = 0.5, fail = 0
#: per rule). Every rule must pass for a pass; a policy may relax this in its [policy] table.
GATE_PASS_SCORE: Final = 100.0
#: Below this score the verdict is fail even when no critical rule failed.
GATE_MARGINAL_SCORE: Final = 75.0

#: Significance level of the one-sided Mann-Whitney U test behind `median_change` rules: a
#: change is graded against its bounds only when the test is this confident that the run
#: shifted at all, so run-to-run noise does not block a release. tests/judging/test_gate.py
#: measures the resulting false-fail and detection rates.
GATE_ALPHA: Final = 0.01

#: Percentile definition for `pNN` rules: the inverted CDF, so `p95 <= b` reads "at least
#: 95 % of the pairs are at or below b" with no interpolation between two pairs.
GATE_QUANTILE_METHOD: Final = "inverted_cdf"

#: Failing pairs listed in the gate's table (the JSON verdict lists all of them).
GATE_MAX_LISTED_PAIRS: Final = 20
#: Failing pairs listed under each rule in `gate --junit`, and in `--markdown`'s table.
GATE_FORMAT_MAX_PAIRS: Final = 20
#: Seconds between two progress lines of `score` without a terminal (a CI log): often
#: enough for CI services that stop a silent job, rare enough to keep the log short.
PROGRESS_INTERVAL_S: Final = 10.0
#: Console width when output is not a terminal (a CI log): wide enough that no table folds
#: a pair id (ids are at most `SAFE_PATH_BYTES`) or an error message.
NO_TTY_WIDTH: Final = 2000

#: Longest time an --on-fail command may run before its process group is killed, seconds
#: (`--on-fail-timeout`): a rollback takes minutes; one that hangs must not hold the CI
#: job until the CI service's own limit, hours later.
GATE_ON_FAIL_TIMEOUT_S: Final = 900.0
#: Largest `--on-fail-timeout`, seconds (a day): longer than any CI job runs, so a larger
#: value is a typo, and every value up to it is a time the clock can wait for.
GATE_ON_FAIL_TIMEOUT_MAX_S: Final = 86_400.0

# --- typography (score) ---

#: How much worse than the baseline's the candidate's character error rate of any one
#: expected string may be before its text counts as lost, when the manifest gives the
#: expected text. On the detection benchmark's legitimate re-renders (JPEG, 1-2 px
#: jitter, other antialiasing, noise), with each disagreeing line read again, no string
#: came within half of it; a headline missing its shortest word exceeds it by half as
#: much again. A changed number is caught by its digits (`text_numbers_changed`): one
#: digit of a line of small print is far below any rate OCR's misreadings allow.
TEXT_CER_MARGIN: Final = 0.10

#: Largest character error rate of the candidate's reading of any one text region against
#: the baseline's (the reference when no expected text is given) for its text to count as
#: kept. Identical pixels read identically (0). On the detection benchmark's legitimate
#: re-renders of 8-12 px print, OCR still differs by a character or two in some lines
#: after the re-reads, which stays under three quarters of this bound; a headline
#: missing its shortest word exceeds it by half as much again, and small print blurred
#: into mush loses most of its characters.
TEXT_CER_MAX: Final = 0.10

#: Lowest `text_sharpness` (candidate's RMS edge strength over the baseline's inside the
#: text regions) for text to count as kept. A clean re-rendering or a JPEG export stays
#: near 1; text re-rasterised at a quarter of its resolution drops far below.
TEXT_SHARPNESS_MIN: Final = 0.6

#: How much smaller than the baseline's the candidate's text may be in any region (its
#: size measured along the line, `text_height_ratio`) for its text to count as kept. On
#: the detection benchmark the legitimate re-renders (JPEG, jitter, other antialiasing,
#: grain, noise) stay within about a quarter of it, while small print drawn 1 px smaller
#: at 8-12 px shrinks by at least twice as much. Text drawn larger reads as well and is
#: not held against the candidate (the golden set's clean re-render is a point larger).
TEXT_HEIGHT_TOLERANCE: Final = 0.04

#: A region whose candidate reading differs from the baseline's is read again on both
#: sides in these ways (line height, binarised or left grey), and the closest readings
#: count: OCR of 8-12 px print misreads a letter or a digit (3/4, 5/$) in one preparation
#: and not in another, while text that really changed reads differently in all of them.
#: Grey keeps the antialiasing that tells small glyphs apart. On the detection
#: benchmark's legitimate re-renders of small print these two bring every line's digits,
#: and its words within a character or two, to the same reading on both sides; a third
#: way (binarised at 48) changed no verdict there, and each way costs two readings.
OCR_REREADS: Final = ((64, False), (40, False))

#: A candidate region whose luma (over white, 0-255) is within a bound of the baseline's
#: at every pixel, at one of the whole-pixel offsets up to `OCR_MATCH_SHIFT_PX`, takes the
#: baseline's reading without OCR: the same glyphs read the same, and OCR of such pixels
#: could only add its own misreadings. The bound is `OCR_MATCH_CONTRAST_SHARE` of the
#: region's own contrast (the gap between the means of its two Otsu classes, ink and
#: paper), at most `OCR_MATCH_LUMA_MAX` levels. A changed or missing glyph moves the
#: pixels it covers by about that contrast (less only where antialiasing covers a pixel
#: partly), so faint text gets a bound as faint as its ink; JPEG q90+, noise, grain and
#: colour conversions of dark print stay under the cap.
OCR_MATCH_LUMA_MAX: Final = 32
#: See `OCR_MATCH_LUMA_MAX`: a quarter, so that a glyph's change stays several times the
#: bound even where antialiasing halves a thin stroke's ink.
OCR_MATCH_CONTRAST_SHARE: Final = 0.25
#: The offsets `OCR_MATCH_LUMA_MAX` is tried at, pixels along each axis: text moved by
#: the jitter the pixel metrics tolerate (`REGISTRATION_ALIGN_MAX_PX` is the outer bound)
#: still matches.
OCR_MATCH_SHIFT_PX: Final = 2

#: Tesseract language(s) when --ocr-lang is not given.
OCR_LANG: Final = "eng"

#: Text lines are scaled so that a line is about this tall (pixels) before OCR: Tesseract
#: reads best with capital letters 20-40 px high; poster small print is often 8-12 px.
OCR_LINE_HEIGHT: Final = 64

#: Each text region is read with this share of its width added on either side, and this
#: share of its height above and below: regions come from the baseline, and another
#: engine's rendering of the same line may run a little longer or sit a little lower.
#: Text this picks up around the line costs nothing, since each expected string is
#: matched against its best stretch of the OCR text.
OCR_GROW_X: Final = 0.15
OCR_GROW_Y: Final = 0.25

#: Largest upscaling applied to a text region before OCR.
OCR_MAX_SCALE: Final = 8.0

#: Mean word confidence (0-100) of a line's own reading below which a line OCR finds in
#: a baseline does not make a text region: photos, textures and shapes read as short
#: strings of symbols at low confidence, real text well above it.
OCR_MIN_CONFIDENCE: Final = 60

#: ... and a line found must be at least this tall (baseline pixels) and read as at least
#: this many letters or digits: sparse-text search reads specks of a photo's grain as
#: single letters, sometimes confidently; real text lines are taller and longer.
OCR_MIN_LINE_PX: Final = 6
OCR_MIN_LINE_CHARS: Final = 2

#: A baseline is looked for text at a scale that brings its long side to about this many
#: pixels, but never more than `OCR_FIND_MAX_SCALE` times: Tesseract misses text whose
#: capitals are under about 10 px, which is poster small print in a 256 px image.
OCR_FIND_SIDE: Final = 1024
OCR_FIND_MAX_SCALE: Final = 3.0

#: ... and a larger baseline is looked for text scaled down to this long side:
#: Tesseract's page analysis, which its time limit does not stop, grows with the page
#: and holds hundreds of MB for a large one. Its regions are still read at full size;
#: text too small to be found at this scale (under about 10 px after scaling) is missed.
OCR_FIND_MAX_SIDE: Final = 4096

#: Largest side of an image Tesseract accepts, pixels: a region is scaled to fit it.
TESSERACT_MAX_SIDE: Final = 32767

#: Largest text region handed to Tesseract, pixels after scaling: a line of a 4K poster
#: scaled to `OCR_LINE_HEIGHT` is well under it; a whole-page box or a region of a huge
#: candidate is scaled down to it, since Tesseract's page analysis, which its time limit
#: does not stop, grows with the area.
OCR_REGION_MAX_PIXELS: Final = 4_000_000

#: Where Tesseract's language data (`<lang>.traineddata`) is looked for when
#: TESSDATA_PREFIX is not set: Debian/Ubuntu (Tesseract 5, then 4), Homebrew, /usr/local.
TESSDATA_DIRS: Final = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/opt/homebrew/share/tessdata",
    "/usr/local/share/tessdata",
)

#: Environment variable naming the OCR cache folder (else $XDG_CACHE_HOME/pixgate/ocr).
OCR_CACHE_ENV: Final = "PIXGATE_OCR_CACHE"

#: Version of the OCR cache's entries and of how a baseline is read: part of every key,
#: so a change to either never reuses an old entry.
OCR_CACHE_FORMAT: Final = 3

#: Largest cache entry read, bytes: `OCR_MAX_REGIONS` readings of `OCR_MAX_READ_CHARS`
#: characters fit well below it.
OCR_CACHE_ENTRY_MAX_BYTES: Final = 4 * 1024 * 1024

#: Longest time one Tesseract call may take, seconds; a hung call becomes an error row.
OCR_TIMEOUT_S: Final = 60.0

#: Longest time all of one pair's Tesseract calls may take together, seconds: a page of
#: hundreds of lines, each read on both sides, stays well within it; a hostile image
#: made to look like endless text ends as an error row instead of holding the run.
OCR_PAIR_TIMEOUT_S: Final = 300.0

#: Most text boxes, ignore boxes and expected strings one manifest entry may give, and the
#: longest expected string: a poster has tens of lines, while each box is read by OCR
#: scaled up to `OCR_MAX_SCALE` and held in memory, and each string's error rate costs its
#: length times the text read. These bound one pair's OCR time and memory.
MANIFEST_MAX_ITEMS: Final = 200
MANIFEST_MAX_TEXT_CHARS: Final = 2000

#: Most text regions read per pair (the lines OCR finds in a baseline, top to bottom, as
#: many as a manifest may give), and the longest reading kept of one region.
OCR_MAX_REGIONS: Final = MANIFEST_MAX_ITEMS
OCR_MAX_READ_CHARS: Final = MANIFEST_MAX_TEXT_CHARS

#: Typography checks in flight per OCR worker: each holds one decoded pair in memory.
OCR_INFLIGHT_PER_WORKER: Final = 2

#: ... and at most this many pixels (baseline and candidate) held by the checks in flight
#: together, so OCR adds at most a batch's worth of decoded pixels to the scoring
#: process's memory, whatever the images' size (one check always runs).
OCR_INFLIGHT_PIXELS: Final = MAX_BATCH_PIXELS

# --- report ---

#: Pairs shown with pictures and maps in a report when --top is not given.
REPORT_TOP: Final = 20

#: Most pairs a report shows with pictures and maps (--top): each card is up to two
#: thumbnails and three maps, so this bounds the cards' share of the page and the
#: pictures decoded to build them, whatever the run holds.
REPORT_MAX_TOP: Final = 1000

#: Rows of a report's table of pairs: the worst this many, worst first, with a note saying
#: how many are not shown and how to get every row (`pixgate export`). A page of a million
#: rows would be hundreds of MB that no browser sorts and no one reads; 2,000 rows are
#: about 0.6 MB, and the run file keeps every row.
REPORT_TABLE_ROWS: Final = 2000

#: Longest side of the thumbnails and maps in a report, pixels: enough to see a failure,
#: small enough that 2,000-pair reports stay a few MB.
REPORT_THUMB_SIDE: Final = 256

#: Longest side the pictures are scaled to before the report's maps (LPIPS, edge loss,
#: alpha) are computed: the maps are for looking at, and this keeps a report of the worst
#: 20 pairs to seconds on a CPU. The numbers shown come from the run, at full size.
REPORT_MAP_SIDE: Final = 384

#: The value at which each kind of report map reaches the top of its colour bar: one
#: scale per kind for the whole report (and every report), so a map's brightness means
#: the same on every card and a pixel-identical pair's maps are black. LPIPS: 1.0, the
#: distance of unrelated pictures for AlexNet LPIPS. Edge loss, in the Sobel magnitude
#: of luma on 0..1 that the edge kernel computes: 4.0 is a black-on-white edge lost
#: entirely. Alpha: 1.0, opaque against transparent.
REPORT_MAP_PEAKS: Final = {"lpips": 1.0, "edge_loss": 4.0, "alpha": 1.0}

#: Worst pairs whose before/after view (slider, blink, full size) is embedded at full
#: resolution, up to `REPORT_VIEW_MAX_PIXELS` each; the cards after them compare
#: thumbnails. With the thumbnails' side, this bounds a report's size whatever --top is.
REPORT_FULL_PAIRS: Final = 20

#: Largest picture (width * height) a full-resolution view embeds; larger pictures are
#: scaled down to it (1024 x 1024: small print stays readable).
REPORT_VIEW_MAX_PIXELS: Final = 1024 * 1024

#: Characters a report shows of a value that comes from a run or verdict file (an error,
#: a rule's name or bound); the file keeps the rest.
REPORT_MAX_FIELD_CHARS: Final = 300

#: Rules of the verdict a report's card lists for one pair.
REPORT_MAX_RULE_LINES: Final = 20

#: The worst pairs are ranked first by the parity checks they break (status, alpha, ICC,
#: size, typography), then by the largest of these ratios: LPIPS over 0.1 (a clearly
#: visible change for AlexNet LPIPS), mean Delta E over 2.3 (a just-noticeable
#: difference) and lost edge strength (1 - edge_preservation) over 0.1.
REPORT_SCALES: Final = {"lpips": 0.1, "delta_e_mean": 2.3, "edge_loss": 0.1}

# --- capture ---

#: Requests (or command runs) per prompt, retries included, when --max-attempts is not given.
CAPTURE_MAX_ATTEMPTS: Final = 4

#: Per-request (or per-command) timeout, seconds.
CAPTURE_TIMEOUT_S: Final = 60.0

#: Requests in flight at once.
CAPTURE_CONCURRENCY: Final = 4

#: First retry waits up to this long, doubling each retry (full jitter: a uniform draw
#: below the cap, so many clients retrying at once spread out instead of hammering a
#: recovering server in step).
CAPTURE_BACKOFF_S: Final = 0.5

#: Longest wait between two attempts chosen by backoff.
CAPTURE_BACKOFF_MAX_S: Final = 30.0

#: Longest `Retry-After` honoured; a server asking for more ends the prompt's attempts
#: with an error rather than holding the capture for that long.
CAPTURE_RETRY_AFTER_MAX_S: Final = 300.0

#: Largest answer (HTTP body, or the file a command writes) accepted per prompt, bytes:
#: a generated image is a few MB; 64 MiB leaves room for large PNGs and base64 JSON while
#: an endless body stops long before it can exhaust memory.
CAPTURE_MAX_BYTES: Final = 64 * 1024 * 1024
#: Largest `--max-bytes` accepted: an answer is held in memory whole, and decoded within
#: `MAX_PIXELS_CEILING`.
CAPTURE_MAX_BYTES_CEILING: Final = 4 * 1024**3

#: Bytes of an error answer's body, or of a failed command's stderr, kept in its message.
CAPTURE_ERROR_TAIL_BYTES: Final = 300

#: Largest seed a prompts file may give (the smallest is 0): an unsigned 64-bit integer,
#: the widest seed common generators take (torch's `manual_seed` takes up to 2**64 - 1)
#: and what the capture file's `seed` column (uint64) holds.
CAPTURE_SEED_MAX: Final = 2**64 - 1

#: Largest X-GPU-Ms a generator's answer may report, ms: about 11.6 days of GPU time, far
#: beyond one generation even summed over a node's GPUs; a larger value is nonsense (or
#: hostile) and is not stored.
CAPTURE_GPU_MS_MAX: Final = 1e9

#: Largest X-Energy-J a generator's answer may report, J: that GPU time at 10 kW (a node
#: of eight GPUs at full power), about 2.8 MWh; a larger value is not stored.
CAPTURE_ENERGY_J_MAX: Final = 1e10

#: Failed prompts listed after a capture; the rest are counted (capture.arrow has them all).
#: Characters of a refused value from data quoted in a message or a row's note, the rest
#: cut: a seed may have thousands of digits, a header or a prompt megabytes of text.
SHOWN_VALUE_CHARS: Final = 60
CAPTURE_MAX_LISTED_ERRORS: Final = 20

# --- exit codes (every command) ---

#: Success: every pair ok, gate passed, files match.
EXIT_OK: Final = 0
#: The inputs were judged and found wanting: some row not ok, a failed gate, a refused
#: approval, a golden set that does not verify.
EXIT_NOT_OK: Final = 1
#: A usage, configuration, input or environment problem, named in one line: a bad option,
#: a missing or malformed file, an output in use by another run, a full disk.
EXIT_USAGE: Final = 2
#: An unexpected internal error (a bug in pixgate): one line, and the traceback is saved
#: to a file whose path the line gives. A score journal stays resumable.
EXIT_INTERNAL: Final = 3
#: Characters of an internal error's message shown on the terminal: enough for any
#: message pixgate or a library words, short enough that one holding a whole file or
#: table stays a line. The saved traceback keeps it whole.
INTERNAL_ERROR_MESSAGE_CHARS: Final = 500
#: Interrupted (Ctrl-C): 128 + SIGINT, as shells report it.
EXIT_INTERRUPTED: Final = 130
