/**
 * Pulling an image into the blob store: resolve the reference to its linux/amd64 manifest,
 * fetch the config and every layer not already stored (several at once, each verified while it
 * streams), then commit the blobs and the image record together. Idempotent: a second pull
 * fetches only the manifest (a tag may have moved), and nothing at all when the reference pins
 * a digest that is already pulled. Resumable by skipping: blobs stored by earlier pulls, even
 * interrupted ones, are not fetched again.
 *
 * What a failure leaves: no image record, ever. Content that failed verification, was too
 * large or came with an unusable manifest is discarded with everything else of that pull; a
 * pull that failed for the network's sake (unreachable, timeout, cancelled) keeps the blobs it
 * had verified, so the retry skips them.
 */
import { PyroError } from "../../shared/errors.js";
import { BlobStore } from "./blobs.js";
import type { ImageRecord, Staging } from "./blobs.js";
import { parseImageConfig } from "./config.js";
import { formatImageReference, parseImageReference } from "./reference.js";
import { RegistryClient } from "./registry.js";
import type { RegistryClientOptions } from "./registry.js";
import type { Descriptor } from "./manifest.js";

/** Layers downloaded at once: enough to fill a link, few enough not to be rate-limited. */
export const DEFAULT_PULL_CONCURRENCY = 3;
/** Progress for a layer is reported at most this often (by bytes), plus at its start and end. */
const PROGRESS_STEP_BYTES = 1024 * 1024;

/** One event of a pull, for progress lines on the CLI and MCP progress notifications. */
export type ImagePullProgress =
  | { phase: "resolve"; reference: string; message: string }
  | {
      phase: "layer";
      reference: string;
      /** 0-based position in the manifest, and how many layers there are. */
      index: number;
      count: number;
      digest: string;
      bytesDone: number;
      bytesTotal: number;
      /** `cached`: already stored, not fetched; `downloading`: in flight; `done`: verified. */
      state: "cached" | "downloading" | "done";
    }
  | { phase: "ready"; reference: string; digest: string; message: string };

export interface ImagePullOptions extends RegistryClientOptions {
  /** Layers fetched at once. Default 3. */
  concurrency?: number;
  onProgress?: (event: ImagePullProgress) => void;
  /** Aborting stops every download; verified blobs are kept for the next pull. */
  signal?: AbortSignal;
}

/** Codes after which nothing of the pull is kept: the content itself was wrong. */
const CONTENT_FAILURES = new Set(["image_digest_mismatch", "image_too_large", "image_invalid", "image_platform_missing"]);

/**
 * Pulls `reference` (an image reference, see reference.ts) into the blob store of `home`.
 * Throws the `image_*` and `registry_unreachable` codes of registry.ts.
 */
export async function pullImage(home: string, reference: string, options: ImagePullOptions = {}): Promise<ImageRecord> {
  const emit = safeEmitter(options.onProgress);
  const ref = parseImageReference(reference);
  const name = formatImageReference(ref);
  const store = new BlobStore(home);

  if (ref.digest !== null) {
    const pinned = await store.readImage(name);
    if (pinned) {
      emit({ phase: "ready", reference: name, digest: pinned.digest, message: `${name} is already pulled.` });
      return pinned;
    }
  }

  const client = new RegistryClient(ref.registry, options);
  emit({ phase: "resolve", reference: name, message: `Resolving ${name}.` });
  const image = await client.resolve(ref, options.signal);

  const staging = await store.openStaging();
  try {
    for (const fetched of [image.index, image.manifest]) {
      if (fetched && !(await store.has({ digest: fetched.digest, size: fetched.bytes.length }))) await staging.addVerified(fetched.digest, fetched.bytes);
    }
    if (!(await store.has(image.config))) {
      const bytes = await client.fetchBlob(ref, image.config, client.limits.configBytes, options.signal);
      parseImageConfig(bytes, image.layers.length, name);
      await staging.addVerified(image.config.digest, bytes);
    }
    await downloadLayers(store, staging, image.layers, {
      concurrency: Math.max(1, Math.min(options.concurrency ?? DEFAULT_PULL_CONCURRENCY, 16)),
      download: (layer, file, onBytes, signal) => client.downloadBlob(ref, layer, file, onBytes, signal),
      emit: (event) => emit({ phase: "layer", reference: name, ...event }),
      signal: options.signal,
    });
    const record: ImageRecord = {
      reference: name,
      registry: ref.registry,
      repository: ref.repository,
      tag: ref.tag,
      digest: image.manifest.digest,
      manifestMediaType: image.manifest.mediaType,
      indexDigest: image.index?.digest ?? null,
      platform: image.platform,
      config: image.config,
      layers: image.layers,
      sizeBytes: image.layers.reduce((sum, layer) => sum + layer.size, image.config.size),
      pulledAt: new Date().toISOString(),
    };
    await store.commit(staging, record);
    emit({ phase: "ready", reference: name, digest: record.digest, message: `${name} is pulled (${record.digest}).` });
    return record;
  } catch (err) {
    if (err instanceof PyroError && CONTENT_FAILURES.has(err.code)) await staging.discardAll();
    else if (staging.verified.size > 0) await store.commit(staging).catch(() => undefined);
    throw err;
  } finally {
    await staging.remove();
  }
}

interface LayerDownloads {
  concurrency: number;
  download: (layer: Descriptor, file: string, onBytes: (done: number) => void, signal: AbortSignal) => Promise<void>;
  emit: (event: Omit<Extract<ImagePullProgress, { phase: "layer" }>, "phase" | "reference">) => void;
  signal: AbortSignal | undefined;
}

/**
 * Downloads the layers not yet stored, `concurrency` at a time, into staging. The first
 * failure aborts the others (their partial files stay unverified and are never committed).
 */
async function downloadLayers(store: BlobStore, staging: Staging, layers: Descriptor[], job: LayerDownloads): Promise<void> {
  const abort = new AbortController();
  const signal = job.signal ? AbortSignal.any([job.signal, abort.signal]) : abort.signal;
  const pending: number[] = [];
  const seen = new Set<string>();
  for (const [index, layer] of layers.entries()) {
    const base = { index, count: layers.length, digest: layer.digest, bytesTotal: layer.size };
    // An image may list the same layer twice (an empty layer, a repeated step): fetch it once.
    if (seen.has(layer.digest) || (await store.has(layer))) {
      job.emit({ ...base, bytesDone: layer.size, state: "cached" });
    } else {
      pending.push(index);
    }
    seen.add(layer.digest);
  }
  let failure: unknown;
  const worker = async () => {
    for (let index = pending.shift(); index !== undefined && failure === undefined; index = pending.shift()) {
      const layer = layers[index]!;
      const base = { index, count: layers.length, digest: layer.digest, bytesTotal: layer.size };
      let reported = 0;
      job.emit({ ...base, bytesDone: 0, state: "downloading" });
      try {
        await job.download(layer, staging.fileFor(layer.digest), (done) => {
          if (done - reported >= PROGRESS_STEP_BYTES && done < layer.size) {
            reported = done;
            job.emit({ ...base, bytesDone: done, state: "downloading" });
          }
        }, signal);
        staging.markVerified(layer.digest);
        job.emit({ ...base, bytesDone: layer.size, state: "done" });
      } catch (err) {
        failure ??= err;
        abort.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.concurrency, pending.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** Progress is informational: a throwing listener must not abort a pull. */
function safeEmitter(listener: ((event: ImagePullProgress) => void) | undefined): (event: ImagePullProgress) => void {
  return (event) => {
    try {
      listener?.(event);
    } catch {
      // ignored on purpose, see above
    }
  };
}
