/**
 * The part of Bun's `bun:ffi` module that rtnl-socket.ts uses, for the type
 * checker (the plugin is compiled and run by Bun; see scripts/build-cni.mjs).
 */
declare module "bun:ffi" {
  export const FFIType: {
    readonly i32: number;
    readonly u32: number;
    readonly u64: number;
    readonly ptr: number;
  };
  export interface Symbol {
    readonly args: readonly number[];
    readonly returns: number;
  }
  export function dlopen<S extends Record<string, Symbol>>(
    path: string,
    symbols: S,
  ): { symbols: { [K in keyof S]: (...args: (number | Uint8Array)[]) => number }; close(): void };
  export const read: { i32(pointer: number, offset?: number): number };
  export class CString {
    constructor(pointer: number);
    toString(): string;
  }
}
