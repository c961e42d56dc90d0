import { InvalidInputError } from "../../kit/errors.ts";

/**
 * Linux interface names as the kernel accepts them (net/core/dev.c
 * dev_valid_name): 1 to 15 bytes, not "." or "..", no "/", ":" or whitespace.
 */

const MAX_INTERFACE_NAME_BYTES = 15;

/** Why `name` is not a valid interface name, or null when it is. */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  if (Buffer.byteLength(name) > MAX_INTERFACE_NAME_BYTES)
    return `is longer than ${MAX_INTERFACE_NAME_BYTES} bytes`;
  if (name === "." || name === "..") return 'is "." or ".."';
  if (/[/:\s]/u.test(name)) return 'contains "/", ":" or whitespace';
  return null;
}

/** `name`, or an InvalidInputError saying why the kernel would refuse it. */
export function checkedInterfaceName(name: string): string {
  const problem = interfaceNameProblem(name);
  if (problem) throw new InvalidInputError(`interface name ${JSON.stringify(name)} ${problem}`);
  return name;
}
