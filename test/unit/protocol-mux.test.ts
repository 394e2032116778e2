import { Duplex, PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ChannelMux, MAX_CHANNEL_FRAME } from "../../src/protocol/mux.js";

/** Two ends of one byte stream, like the host and guest sides of a virtio-serial port. */
function link(): [Duplex, Duplex] {
  const a2b = new PassThrough();
  const b2a = new PassThrough();
  return [Duplex.from({ readable: b2a, writable: a2b }), Duplex.from({ readable: a2b, writable: b2a })];
}

const collect = (s: Duplex) => {
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  return () => Buffer.concat(chunks);
};
const tick = () => new Promise((r) => setTimeout(r, 10));

describe("channels over one stream", () => {
  it("keeps connections apart, in both directions, and signals readiness", async () => {
    const [hostEnd, guestEnd] = link();
    const served: Duplex[] = [];
    const guest = new ChannelMux(guestEnd, (c) => {
      served.push(c);
      c.on("data", (d: Buffer) => c.write(Buffer.concat([Buffer.from(`${served.indexOf(c)}:`), d])));
    });
    const host = new ChannelMux(hostEnd);
    guest.announceReady();
    await host.ready;
    const one = host.open();
    const two = host.open();
    const got1 = collect(one);
    const got2 = collect(two);
    two.write("second");
    one.write("first");
    await tick();
    expect(got1().toString()).toBe("0:first");
    expect(got2().toString()).toBe("1:second");
    expect(served).toHaveLength(2);
  });

  it("splits large writes into bounded frames and delivers them whole", async () => {
    const [hostEnd, guestEnd] = link();
    let received: () => Buffer = () => Buffer.alloc(0);
    new ChannelMux(guestEnd, (c) => (received = collect(c)));
    const host = new ChannelMux(hostEnd);
    const big = Buffer.alloc(MAX_CHANNEL_FRAME * 3 + 17, 7);
    const ch = host.open();
    ch.write(big);
    await tick();
    expect(received().equals(big)).toBe(true);
  });

  it("closes the peer's channel when one side closes, and only that one", async () => {
    const [hostEnd, guestEnd] = link();
    const served: Duplex[] = [];
    new ChannelMux(guestEnd, (c) => served.push(c));
    const host = new ChannelMux(hostEnd);
    const a = host.open();
    const b = host.open();
    await tick();
    let closed = false;
    served[0]!.on("close", () => (closed = true));
    a.destroy();
    await tick();
    expect(closed).toBe(true);
    expect(served[1]!.destroyed).toBe(false);
    expect(b.destroyed).toBe(false);
    expect(host.channelCount).toBe(1);
  });

  it("gives up on a peer that sends an oversized or unknown frame, closing every channel", async () => {
    const [hostEnd, guestEnd] = link();
    let broken: Error | null = null;
    const host = new ChannelMux(hostEnd, null, (err) => (broken = err));
    const ch = host.open();
    const header = Buffer.alloc(9);
    header.writeUInt8(2, 0);
    header.writeUInt32BE(1, 1);
    header.writeUInt32BE(MAX_CHANNEL_FRAME + 1, 5);
    guestEnd.write(header);
    await tick();
    expect(broken).not.toBeNull();
    expect(ch.destroyed).toBe(true);
  });
});
