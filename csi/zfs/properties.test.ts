import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import { ALLOWED_PARAMETER_KEYS, zfsPropertiesFromParameters } from "./properties.ts";

describe("StorageClass parameters → ZFS properties", () => {
  it.each([
    ["compression", "lz4", "lz4"],
    ["compression", "gzip-9", "gzip-9"],
    ["compression", "zstd-19", "zstd-19"],
    ["compression", "zstd-fast-10", "zstd-fast-10"],
    ["compression", "off", "off"],
    ["recordsize", "128K", "131072"],
    ["recordsize", "16k", "16384"],
    ["recordsize", "1M", "1048576"],
    ["recordsize", "512", "512"],
    ["atime", "off", "off"],
    ["relatime", "on", "on"],
    ["checksum", "sha256", "sha256"],
    ["sync", "disabled", "disabled"],
    ["logbias", "throughput", "throughput"],
    ["primarycache", "metadata", "metadata"],
    ["secondarycache", "none", "none"],
    ["copies", "2", "2"],
    ["xattr", "sa", "sa"],
    ["acltype", "posix", "posix"],
    ["snapdir", "visible", "visible"],
    ["exec", "off", "off"],
    ["setuid", "off", "off"],
    ["redundant_metadata", "most", "most"],
  ])("%s=%s becomes %s", (key, value, expected) => {
    expect(zfsPropertiesFromParameters({ [key]: value })).toEqual({ [key]: expected });
  });

  it("maps several keys at once and skips provisioner and Skein keys", () => {
    expect(
      zfsPropertiesFromParameters({
        recordsize: "16K",
        compression: "lz4",
        "csi.storage.k8s.io/pvc/name": "data",
        "skein.io/replicas": "1",
      }),
    ).toEqual({ compression: "lz4", recordsize: "16384" });
  });

  it("accepts no parameters", () => {
    expect(zfsPropertiesFromParameters({})).toEqual({});
  });

  it.each([
    [
      "compression",
      "brotli",
      /invalid value "brotli" for StorageClass parameter 'compression'; it accepts on, off/,
    ],
    ["compression", "gzip-10", /'compression'/],
    ["compression", "zstd-0", /'compression'/],
    ["recordsize", "100K", /power of two/],
    ["recordsize", "256", /power of two/],
    ["recordsize", "32M", /power of two/],
    ["recordsize", "128 K", /power of two/],
    ["atime", "yes", /it accepts on, off/],
    ["copies", "4", /1, 2, 3/],
    ["checksum", "off", /'checksum'/],
    ["sync", "", /'sync'/],
  ])("refuses %s=%j", (key, value, why) => {
    expect(() => zfsPropertiesFromParameters({ [key]: value })).toThrow(why);
  });

  it("refuses dedup and says why", () => {
    expect(() => zfsPropertiesFromParameters({ dedup: "on" })).toThrow(
      /'dedup' is not allowed: deduplication keeps a table in memory.*use compression instead/,
    );
  });

  it.each(["quota", "refquota", "reservation", "refreservation", "mountpoint", "canmount", "readonly"])(
    "refuses %s, which Skein manages",
    (key) => {
      expect(() => zfsPropertiesFromParameters({ [key]: "1" })).toThrow(/Skein manages it/);
    },
  );

  it.each(["encryption", "keyformat", "keylocation", "volsize", "sharenfs", "sharesmb"])(
    "refuses %s",
    (key) => {
      expect(() => zfsPropertiesFromParameters({ [key]: "on" })).toThrow(InvalidInputError);
    },
  );

  it("names an unknown key and lists the allowed ones", () => {
    let message = "";
    try {
      zfsPropertiesFromParameters({ compresion: "lz4" });
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidInputError);
      message = (err as Error).message;
    }
    expect(message).toContain("unknown StorageClass parameter 'compresion'");
    for (const key of ALLOWED_PARAMETER_KEYS) expect(message).toContain(key);
  });

  it("refuses a prefixed key that is not Skein's or the provisioner's", () => {
    expect(() => zfsPropertiesFromParameters({ "example.com/x": "1" })).toThrow(
      /unknown StorageClass parameter/,
    );
  });
});
