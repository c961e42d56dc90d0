import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**"],
    // Starts the shared real parts once per run (zfs-fuse, etcd + kube-apiserver).
    globalSetup: ["test/global-setup.ts"],
    // Integration tests drive real processes, pools and namespaces on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
