import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { scratchDir } from "../../test/fixtures/scratch.ts";
import { SendLedger, temporarySendTag } from "./send-ledger.ts";

describe("send ledger", () => {
  const dirs: string[] = [];
  const fresh = () => {
    const dir = scratchDir("ledger");
    dirs.push(dir);
    return join(dir, "state", "sends");
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("records the sends under way, and forgets each that finishes", () => {
    const path = fresh();
    const ledger = new SendLedger(path);
    expect(ledger.leftover()).toEqual([]);
    ledger.reset();
    ledger.started(101);
    ledger.started(202);
    ledger.finished(101);
    // What a restarted process finds: the one send still under way when this one died.
    expect(new SendLedger(path).leftover()).toEqual([202]);
    expect(readFileSync(path, "utf8")).toBe("202\n");
  });

  it("reads what it can of a record a kill cut short, and starts afresh on reset", () => {
    const path = fresh();
    new SendLedger(path).reset();
    writeFileSync(path, "303\n404\n5x\n-1\n303\n40");
    const ledger = new SendLedger(path);
    expect(ledger.leftover()).toEqual([303, 404, 40]);
    ledger.reset();
    expect(ledger.leftover()).toEqual([]);
  });

  it("names the temporary hold zfs-fuse's send -I places", () => {
    expect(temporarySendTag(1234)).toBe(".send-1234-0");
  });
});
