/**
 * `metav1.Condition` helpers with apimachinery's `SetStatusCondition` rule:
 * `lastTransitionTime` moves only when `status` flips, while `reason`,
 * `message` and `observedGeneration` always take the newest values. Pure: the
 * clock is an argument, and an unchanged list comes back as the same array so
 * a caller can skip a needless status write.
 */
import { InvalidInputError } from "../errors.ts";

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  /** RFC 3339, seconds precision, as the API server writes metav1.Time. */
  lastTransitionTime: string;
}

export type ConditionUpdate = Omit<Condition, "lastTransitionTime">;

// The patterns metav1.Condition's schema enforces; checked here so a bad
// reason fails in the controller's test, not as a 422 from the API server.
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const TYPE =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const STATUSES: readonly string[] = ["True", "False", "Unknown"];
const MAX_MESSAGE = 32_768;

/** metav1.Time's wire form: RFC 3339 without fractional seconds. */
export function formatTime(time: Date): string {
  return `${time.toISOString().slice(0, 19)}Z`;
}

/**
 * RFC 3339 with milliseconds, for times that measure something short (a
 * cutover's downtime): whole seconds would make a 200 ms handoff read as 1 s.
 */
export function formatPreciseTime(time: Date): string {
  return time.toISOString();
}

function validate(update: ConditionUpdate): void {
  if (update.type.length > 316 || !TYPE.test(update.type)) {
    throw new InvalidInputError(
      `condition type ${JSON.stringify(update.type)} is not a valid name: use CamelCase, optionally with a domain/ prefix`,
    );
  }
  if (!STATUSES.includes(update.status)) {
    throw new InvalidInputError(
      `condition ${update.type} has status ${JSON.stringify(update.status)}: use True, False or Unknown`,
    );
  }
  if (update.reason.length > 1024 || !REASON.test(update.reason)) {
    throw new InvalidInputError(
      `condition ${update.type} has reason ${JSON.stringify(update.reason)}: use a CamelCase word such as NetworkExhausted`,
    );
  }
  if (
    update.observedGeneration !== undefined &&
    !(Number.isInteger(update.observedGeneration) && update.observedGeneration >= 0)
  ) {
    throw new InvalidInputError(
      `condition ${update.type} has observedGeneration ${update.observedGeneration}: use metadata.generation`,
    );
  }
}

/**
 * Sets `update` in `conditions` (matched by type). Returns a new list when
 * something changed, or `conditions` itself when nothing did. Never mutates.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
): readonly Condition[] {
  validate(update);
  const list = conditions ?? [];
  const message =
    update.message.length > MAX_MESSAGE ? `${update.message.slice(0, MAX_MESSAGE - 1)}…` : update.message;
  const index = list.findIndex((c) => c.type === update.type);
  const existing = list[index];
  if (!existing) {
    return [...list, withOptionalGeneration({ ...update, message, lastTransitionTime: formatTime(now) })];
  }
  const next = withOptionalGeneration({
    type: update.type,
    status: update.status,
    reason: update.reason,
    message,
    observedGeneration: update.observedGeneration ?? existing.observedGeneration,
    lastTransitionTime: existing.status === update.status ? existing.lastTransitionTime : formatTime(now),
  });
  if (sameCondition(existing, next)) return list;
  return list.map((c, i) => (i === index ? next : c));
}

/** Removes the condition of `type`; returns `conditions` itself when there was none. */
export function removeCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): readonly Condition[] {
  const list = conditions ?? [];
  return list.some((c) => c.type === type) ? list.filter((c) => c.type !== type) : list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

function withOptionalGeneration(c: Condition): Condition {
  if (c.observedGeneration === undefined) {
    const { observedGeneration: _, ...rest } = c;
    return rest;
  }
  return c;
}

function sameCondition(a: Condition, b: Condition): boolean {
  return (
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.observedGeneration === b.observedGeneration &&
    a.lastTransitionTime === b.lastTransitionTime
  );
}
