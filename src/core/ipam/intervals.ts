// Closed intervals [start, end] of BigInt addresses: the free-space index of a pool is a sorted,
// non-overlapping list of these, so nothing ever walks a pool address by address.

export interface Interval {
  start: bigint;
  end: bigint;
}

/** Sorts and merges overlapping or adjacent intervals. */
export function normalize(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.start <= last.end + 1n) {
      if (iv.end > last.end) last.end = iv.end;
    } else {
      out.push({ start: iv.start, end: iv.end });
    }
  }
  return out;
}

/** `from` minus every interval of `remove`; both may be unsorted. */
export function subtract(from: Interval[], remove: Interval[]): Interval[] {
  const a = normalize(from);
  const r = normalize(remove);
  const out: Interval[] = [];
  let j = 0;
  for (const iv of a) {
    let cur = iv.start;
    while (j < r.length && r[j].end < cur) j++;
    let k = j;
    while (k < r.length && r[k].start <= iv.end) {
      if (r[k].start > cur) out.push({ start: cur, end: r[k].start - 1n });
      if (r[k].end + 1n > cur) cur = r[k].end + 1n;
      k++;
    }
    if (cur <= iv.end) out.push({ start: cur, end: iv.end });
  }
  return out;
}

export function overlaps(a: Interval, b: Interval): boolean {
  return a.start <= b.end && b.start <= a.end;
}

export function totalSize(list: Interval[]): bigint {
  return normalize(list).reduce((s, iv) => s + (iv.end - iv.start + 1n), 0n);
}
