// The renderer registry: one pure function per guest configuration format.
import { invalid } from '../model/errors.js';
import type { GuestNetState, RenderedFiles } from './ir.js';
import { renderEni } from './renderers/eni.js';
import { renderIp, type IpRenderOptions } from './renderers/ip.js';
import { renderNetplan, type NetplanRenderOptions } from './renderers/netplan.js';
import { renderNetworkd } from './renderers/networkd.js';
import { renderNm } from './renderers/nm.js';
import { renderSysconfig } from './renderers/sysconfig.js';
import { renderWindows } from './renderers/windows.js';

export const GUEST_FORMATS = ['netplan', 'eni', 'sysconfig', 'networkd', 'nm', 'windows', 'ip'] as const;
export type GuestFormat = (typeof GUEST_FORMATS)[number];

export type RenderOptions = IpRenderOptions & NetplanRenderOptions;

const RENDERERS: Record<GuestFormat, (s: GuestNetState, o: RenderOptions) => RenderedFiles> = {
  netplan: renderNetplan,
  eni: renderEni,
  sysconfig: renderSysconfig,
  networkd: renderNetworkd,
  nm: renderNm,
  windows: renderWindows,
  ip: renderIp,
};

export function parseFormat(value: string, field = 'format'): GuestFormat {
  if (!(GUEST_FORMATS as readonly string[]).includes(value)) throw invalid(field, `'${value}' is not a format (${GUEST_FORMATS.join(', ')})`);
  return value as GuestFormat;
}

export function render(state: GuestNetState, format: GuestFormat, opts: RenderOptions = {}): RenderedFiles {
  return RENDERERS[format](state, opts);
}
