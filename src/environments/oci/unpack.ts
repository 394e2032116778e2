/**
 * Turns one stored image layer into an overlay layer directory: the blob is decompressed on
 * the host (gzip with zlib, zstd with the `zstd` program, plain as is) and streamed into GNU
 * tar running confined as guest root (import-source.ts), never extracted by the host; the
 * uncompressed stream is hashed on the way and must match the config's `diff_id`. Then, again
 * confined, OCI whiteouts become what overlayfs reads:
 *
 *   `.wh.NAME`      → NAME as a 0:0 character device (an overlay whiteout; the kernel lets
 *                     anyone create that one device, so this works in a user namespace), or,
 *                     when the same layer also has a directory NAME, that directory marked
 *                     opaque (the spec: the layer's own NAME replaces everything below);
 *   `.wh..wh..opq`  → its directory marked opaque with the `user.overlay.opaque` xattr, the
 *                     form overlayfs reads with `userxattr`, which every pyro sandbox mounts.
 *
 * Hard links (within the layer), symlinks with absolute targets (resolved inside the sandbox
 * at run time) and setuid bits are kept as the image has them; device nodes cannot be made in
 * a user namespace and are skipped (a sandbox gets its own /dev). Overlay xattrs carried in the
 * archive are not extracted: only the conversion above decides what is hidden.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { spawn } from "node:child_process";
import { Transform } from "node:stream";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { PyroError } from "../../shared/errors.js";
import { extractConfined } from "../import-source.js";
import { runConfinedBuildStep } from "../command.js";
import { layerCompression } from "./manifest.js";
import type { Descriptor } from "./manifest.js";

/** Uncompressed bytes one layer may expand to: a bound on a decompression bomb. Default 64 GiB. */
export const DEFAULT_UNPACKED_LAYER_LIMIT = 64 * 1024 * 1024 * 1024;

export interface UnpackOptions {
  /** Overrides DEFAULT_UNPACKED_LAYER_LIMIT. */
  unpackedLimit?: number;
  signal?: AbortSignal;
}

/**
 * Unpacks `blobFile` (the stored blob of `layer`) into `target`, an empty directory owned by
 * guest root, and converts its whiteouts. Throws `image_digest_mismatch` when the uncompressed
 * content does not hash to `diffId`, `image_too_large` beyond the unpacked limit; the caller
 * discards `target` on any error.
 */
export async function unpackLayer(name: string, blobFile: string, layer: Descriptor, diffId: string, target: string, options: UnpackOptions = {}): Promise<void> {
  const compression = layerCompression(layer.mediaType);
  if (!compression) throw new PyroError("image_invalid", `layer ${layer.digest} of ${name} has media type ${layer.mediaType.slice(0, 100)}, which pyro does not unpack`);
  const limit = options.unpackedLimit ?? DEFAULT_UNPACKED_LAYER_LIMIT;
  const { stream, done: decompressed } = decompress(blobFile, compression);
  const hash = createHash("sha256");
  let total = 0;
  let ended = false;
  const hasher = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      total += chunk.length;
      if (total > limit) {
        callback(new PyroError("image_too_large", `layer ${layer.digest} of ${name} unpacks to more than ${limit} bytes`, { details: { digest: layer.digest, limit } }));
        return;
      }
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      ended = true;
      callback();
    },
  });
  let streamError: unknown;
  stream.on("error", (err) => {
    streamError ??= err;
    hasher.destroy(err);
  });
  hasher.on("error", (err) => {
    streamError ??= err;
  });
  stream.pipe(hasher);

  await extractConfined(name, hasher, target, options.signal).catch((err: unknown) => {
    throw streamError instanceof PyroError ? streamError : err;
  });
  // tar may stop reading at the end-of-archive blocks; anything after them still counts.
  if (!ended && !streamError) {
    await new Promise<void>((resolve, reject) => {
      hasher.on("end", resolve);
      hasher.on("error", reject);
      hasher.resume();
    });
  }
  if (streamError instanceof PyroError) throw streamError;
  const problem = streamError ?? (await decompressed);
  if (problem) {
    throw new PyroError("image_invalid", `layer ${layer.digest} of ${name} could not be decompressed (${String(problem instanceof Error ? problem.message : problem).slice(0, 200)})`, {
      details: { digest: layer.digest, compression },
    });
  }
  const actual = `sha256:${hash.digest("hex")}`;
  if (actual !== diffId) {
    throw new PyroError("image_digest_mismatch", `layer ${layer.digest} of ${name} unpacks to ${actual}, not the config's ${diffId}`, {
      hint: "The image's config and layer do not belong together; rebuild and push the image.",
      details: { digest: layer.digest, diff_id: diffId, actual },
    });
  }
  await convertWhiteouts(name, target, options.signal);
}

/** The plain tar stream of a blob, and a promise of the decompressor's failure (null when fine). */
function decompress(blobFile: string, compression: "gzip" | "zstd" | "none"): { stream: Readable; done: Promise<unknown> } {
  const raw = createReadStream(blobFile);
  if (compression === "none") return { stream: raw, done: Promise.resolve(null) };
  if (compression === "gzip") {
    const gunzip = createGunzip();
    raw.on("error", (err) => gunzip.destroy(err));
    return { stream: raw.pipe(gunzip), done: Promise.resolve(null) };
  }
  raw.destroy();
  // zstd is not in Node 20's zlib; Debian's zstd program decodes it (scripts/setup.sh installs it).
  const child = spawn("zstd", ["-d", "-c", "-q", "--", blobFile], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-500);
  });
  const done = new Promise<unknown>((resolve) => {
    child.on("error", (err: NodeJS.ErrnoException) => {
      resolve(
        err.code === "ENOENT"
          ? new PyroError("host_unsupported", "zstd is not installed on this host, and this image has zstd layers", { hint: "Install it: apt-get install zstd." })
          : err,
      );
    });
    child.on("close", (code) => resolve(code === 0 ? null : new Error(stderr.trim() || `zstd exited with status ${code}`)));
  });
  void done.then((problem) => {
    if (problem instanceof PyroError) child.stdout.destroy(problem);
  });
  return { stream: child.stdout, done };
}

/**
 * The conversion described at the top, in perl (perl-base is on every host pyro runs on and
 * can make the two system calls Node cannot: mknod and lsetxattr). It walks real directories
 * only (lstat, never through a symlink), so every path it touches is inside the layer; it runs
 * confined as guest root, so even a mistake could not reach beyond the layer's own ids.
 */
const WHITEOUT_PERL = String.raw`
use strict;
# x86_64 numbers; syscall() wants writable strings, hence the copies below.
my ($SYS_mknod, $SYS_lsetxattr) = (133, 189);
sub opaque { my ($d, $k, $v) = (shift, "user.overlay.opaque", "y"); syscall($SYS_lsetxattr, $d, $k, $v, 1, 0) == 0 or die "setxattr $d: $!\n"; }
sub walk {
  my $dir = shift;
  opendir(my $h, $dir) or die "opendir $dir: $!\n";
  my @names = grep { $_ ne "." && $_ ne ".." } readdir($h);
  closedir($h);
  for my $n (@names) {
    my $p = "$dir/$n";
    if ($n eq ".wh..wh..opq") { unlink($p) or die "unlink $p: $!\n"; opaque($dir); next; }
    if ($n =~ /^\.wh\.(.+)$/) {
      my $victim = "$dir/$1";
      unlink($p) or die "unlink $p: $!\n";
      if (-d $victim && ! -l $victim) { opaque($victim); }
      elsif (! -e $victim && ! -l $victim) { syscall($SYS_mknod, $victim, 0020000 | 0600, 0) == 0 or die "mknod $victim: $!\n"; }
      next;
    }
  }
  opendir($h, $dir) or die "opendir $dir: $!\n";
  my @dirs = grep { $_ ne "." && $_ ne ".." && ! -l "$dir/$_" && -d "$dir/$_" } readdir($h);
  closedir($h);
  walk("$dir/$_") for @dirs;
}
walk($ARGV[0]);
`;

async function convertWhiteouts(name: string, target: string, signal: AbortSignal | undefined): Promise<void> {
  if (process.arch !== "x64") throw new PyroError("host_unsupported", `unpacking image layers is supported on x64 only, not ${process.arch}`);
  await runConfinedBuildStep(name, "whiteout conversion", (launch) => ["perl", "-e", WHITEOUT_PERL, launch.bind(target)], {
    signal,
    failureHint: "The layer's whiteout entries could not be turned into overlay form; report it with the image reference.",
  });
}
