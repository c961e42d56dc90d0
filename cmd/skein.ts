/**
 * `skein`: one executable, one subcommand per component. Each component owns
 * its flags and `--help`; this file only dispatches, and is the only place
 * (with the components' own main functions) that decides the exit code.
 */
import pkg from "../package.json" with { type: "json" };

interface Command {
  summary: string;
  /** Loaded lazily so one component's dependencies never load for another. */
  main: () => Promise<(argv: string[]) => Promise<number>>;
}

const commands: Record<string, Command> = {
  dns: {
    summary: "run the node DNS responder alone (the network agent hosts it in production)",
    main: async () => (await import("../cni/dns/main.ts")).main,
  },
  operator: {
    summary: "run the operator (network allocation, node garbage collection)",
    main: async () => (await import("../operator/main.ts")).main,
  },
  "net-agent": {
    summary: "run the node network agent (bridge, VXLAN overlay, CNI plugin install)",
    main: async () => (await import("../cni/main.ts")).main,
  },
  "csi-controller": {
    summary: "run the CSI controller (Identity + Controller services over Volume objects)",
    main: async () => (await import("../csi/main.ts")).controllerMain,
  },
  "csi-node": {
    summary: "run the CSI node plugin and this node's ZFS volume agent",
    main: async () => (await import("../csi/main.ts")).nodeMain,
  },
  version: {
    summary: "print the version",
    main: async () => async () => {
      console.log(pkg.version);
      return 0;
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    `usage: skein <command> [flags]`,
    "",
    "commands:",
    ...lines,
    "",
    "Run 'skein <command> --help' for a command's flags.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`skein: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await command.main())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`skein: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
