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
