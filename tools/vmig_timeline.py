# SPDX-License-Identifier: GPL-2.0-or-later
"""A migration timeline (x-query-migration-timeline) as JSON and as SVG.

Standard library only; used by tools/vmig-migrate and scripts/demo.py.
The SVG is self-contained SVG 1.1: no scripts, no stylesheets, no fonts
beyond the generic families.  It is built as an ElementTree, so every
text is escaped by the serialiser and the result is always well-formed.

Run as a program it renders a saved timeline:
    python3 tools/vmig_timeline.py TIMELINE.json OUT.svg
"""
import json
import math
import sys
import time
import xml.etree.ElementTree as ET

SVG_NS = 'http://www.w3.org/2000/svg'

WIDTH = 1000
LEFT = 150              # room for lane names and axis labels
RIGHT = 30
PLOT_W = WIDTH - LEFT - RIGHT
FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif'

# Device migration states (docs/devel/vfio-migration.rst), one color each.
DEVICE_STATE_COLORS = {
    'running': '#8fbf6f',
    'running-p2p': '#b7d89f',
    'pre-copy': '#5b9bd5',
    'pre-copy-p2p': '#8fb9e3',
    'stop-copy': '#e07b39',
    'stop': '#a6a6a6',
    'resuming': '#9b72cb',
    'error': '#d9534f',
}
# Migration statuses (query-migrate's names).
# Lighter than the device states, so that the two never look alike.
STATUS_COLORS = {
    'setup': '#e6e6e6',
    'active': '#cfe0f3',
    'pre-switchover': '#fbe7b5',
    'device': '#f9d3b8',
    'postcopy-active': '#e2d5f0',
    'postcopy-paused': '#efe7f7',
    'completed': '#d9ecce',
    'failed': '#f4c7c6',
    'cancelling': '#f9e0df',
    'cancelled': '#d0d0d0',
}
# Downtime phases, in the order a switchover runs them.
PHASE_COLORS = {
    'device-stop': '#e07b39',
    'pre-switchover': '#f0c05a',
    'final-ram': '#5b9bd5',
    'device-state': '#9b72cb',
    'device-threads': '#c39bd3',
    'config': '#4db6ac',
    'destination': '#8fbf6f',
    'postcopy-package': '#f2a3a1',
}
# Colors for names the tables above do not know (a newer vmig).
SPARE_COLORS = ['#7f7f7f', '#bcbd22', '#17becf', '#e377c2', '#8c564b']
CHANNEL_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b',
                  '#e377c2', '#17becf', '#bcbd22']
BANDWIDTH_COLOR = '#3a8d8c'
DIRTY_COLOR = '#d9534f'
DOWNTIME_COLOR = '#d9534f'


def write_json(timeline, path):
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(timeline, f, indent=2)
        f.write('\n')


def write_svg(timeline, path):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(render_svg(timeline))


def fmt_ms(ms):
    if 0 < ms < 0.1:
        return f'{ms * 1000:.0f} \u00b5s'
    if 0 < ms < 10:
        return f'{ms:.2f} ms'
    if ms >= 10000:
        return f'{ms / 1000:.1f} s'
    if ms >= 1000:
        return f'{ms / 1000:.2f} s'
    return f'{ms:.1f} ms'


def fmt_bytes(n):
    for unit, size in (('GiB', 1 << 30), ('MiB', 1 << 20), ('KiB', 1 << 10)):
        if n >= size:
            return f'{n / size:.1f} {unit}'
    return f'{n:.0f} B'


def fmt_rate(n):
    return fmt_bytes(n) + '/s'


def text_width(s, size):
    """About the width of @s in pixels at font size @size, with margins."""
    return 0.6 * size * len(s) + 6


def color_of(name, table, spares):
    """The table's color for @name, or a spare one kept for it."""
    if name in table:
        return table[name]
    if name not in spares:
        spares[name] = SPARE_COLORS[len(spares) % len(SPARE_COLORS)]
    return spares[name]


def nice_step(span, ticks):
    """A 1-2-5 step giving about @ticks intervals over @span."""
    raw = span / max(ticks, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def timeline_span(tl):
    """The time covered: total-ms, or the latest time anything mentions."""
    times = [tl.get('total-ms', 0)]
    times += [e.get('ms', 0) for e in tl.get('events', [])]
    times += [p.get('end-ms', 0) for p in tl.get('passes', [])]
    for dev in tl.get('devices', []):
        times += [a.get('ms', 0) for a in dev.get('arcs', [])]
    times.append(tl.get('downtime', {}).get('end-ms', 0))
    for ch in tl.get('multifd', []):
        times += [s.get('ms', 0) for s in ch.get('samples', [])]
    return max(max(times), 1.0)


def state_segments(changes, end_ms):
    """[(start, end, state)] from [(ms, state)] sorted by time."""
    segs = []
    for i, (ms, state) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else end_ms
        if stop > ms or i + 1 == len(changes):
            segs.append((ms, max(stop, ms), state))
    return segs


class Svg:
    """An SVG document being drawn, top to bottom."""

    def __init__(self, span):
        self.root = ET.Element('svg', {
            'xmlns': SVG_NS, 'version': '1.1',
            'font-family': FONT, 'font-size': '12'})
        self.span = span
        self.t0, self.t1 = 0.0, span    # the time window drawn
        self.y = 0
        self.spares = {}

    def x(self, ms):
        ms = min(max(ms, self.t0), self.t1)
        return LEFT + PLOT_W * (ms - self.t0) / (self.t1 - self.t0)

    def el(self, tag, parent=None, text=None, **attrs):
        e = ET.SubElement(self.root if parent is None else parent, tag,
                          {k.replace('_', '-'): fmt_attr(v)
                           for k, v in attrs.items()})
        if text is not None:
            e.text = text
        return e

    def text(self, x, y, s, parent=None, **attrs):
        return self.el('text', parent, s, x=x, y=y, **attrs)

    def rect(self, x, y, w, h, fill, parent=None, title=None, **attrs):
        r = self.el('rect', parent, x=x, y=y, width=max(w, 0.5), height=h,
                    fill=fill, **attrs)
        if title:
            self.el('title', r, title)
        return r

    def finish(self):
        height = self.y + 20
        self.root.set('width', str(WIDTH))
        self.root.set('height', fmt_attr(height))
        self.root.set('viewBox', f'0 0 {WIDTH} {fmt_attr(height)}')
        self.root.insert(0, ET.Element('rect', {
            'x': '0', 'y': '0', 'width': '100%', 'height': '100%',
            'fill': 'white'}))
        ET.indent(self.root)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' +
                ET.tostring(self.root, encoding='unicode') + '\n')


def fmt_attr(v):
    if isinstance(v, float):
        return f'{v:.2f}'.rstrip('0').rstrip('.')
    return str(v)


def draw_title(svg, tl):
    status = tl.get('status', 'unknown')
    down = tl.get('downtime', {})
    parts = [f'vmig migration: {status}',
             f"total {fmt_ms(tl.get('total-ms', 0))}"]
    if 'ms' in down:
        parts.append(f"downtime {fmt_ms(down['ms'])}")
    passes = tl.get('passes', [])
    if passes:
        parts.append(f'{len(passes)} pass{"es" if len(passes) > 1 else ""}')
    title = ' \u00b7 '.join(parts)
    svg.el('title', text=title)
    svg.text(20, 28, title, font_size=18, font_weight='bold', id='title')
    if 'start' in tl:
        when = time.strftime('%Y-%m-%d %H:%M:%S %Z',
                             time.localtime(tl['start']))
        svg.text(20, 46, f'started {when}', font_size=11, fill='#555')
    svg.y = 56


def draw_axis(svg, y, grid_top, ident='time-axis', origin=0.0,
              label='time since migrate'):
    """The time axis at @y, with grid lines up to @grid_top; ticks
    count from @origin."""
    g = svg.el('g', id=ident)
    svg.el('line', g, x1=LEFT, y1=y, x2=LEFT + PLOT_W, y2=y, stroke='black')
    step = nice_step(svg.t1 - svg.t0, 10)
    first = math.ceil((svg.t0 - origin) / step)
    for i in range(first, first + 12):
        t = origin + i * step
        if t > svg.t1 + step / 1000:
            break
        x = svg.x(t)
        svg.el('line', g, x1=x, y1=grid_top, x2=x, y2=y, stroke='#e4e4e4')
        svg.el('line', g, x1=x, y1=y, x2=x, y2=y + 5, stroke='black')
        tick = fmt_ms(abs(i * step)) if i else '0'
        sign = '-' if i < 0 else '+' if i and origin else ''
        svg.text(x, y + 18, sign + tick, g, text_anchor='middle',
                 font_size=11)
    svg.text(LEFT + PLOT_W / 2, y + 34, label, g,
             text_anchor='middle', font_size=11, fill='#555')
    return y + 40


def draw_lane(svg, parent, y, h, name, segs, colors):
    svg.text(LEFT - 8, y + h / 2 + 4, name, parent, text_anchor='end')
    for start, end, state in segs:
        x0, x1 = svg.x(start), svg.x(end)
        fill = color_of(state, colors, svg.spares)
        svg.rect(x0, y, x1 - x0, h, fill, parent,
                 title=f'{name}: {state} {fmt_ms(start)} - {fmt_ms(end)}',
                 stroke='white', stroke_width=0.5, **{'class': 'segment'})
        if x1 - x0 > text_width(state, 10):
            svg.text((x0 + x1) / 2, y + h / 2 + 4, state, parent,
                     text_anchor='middle', font_size=10)


def draw_passes(svg, tl):
    """Passes as bars of their bandwidth, the dirty rate as a line."""
    passes = tl.get('passes', [])
    if not passes:
        return
    g = svg.el('g', id='passes')
    h = 150
    top = svg.y + 20
    svg.text(20, top - 6, 'RAM passes', g, font_weight='bold')
    # Scaled to the passes one can see: the last ones of a converging
    # migration last a few ms at rates no longer pass comes near, and
    # would flatten every other bar.  Their bars are cut at the top.
    visible = [p for p in passes
               if p.get('end-ms', 0) - p.get('start-ms', 0) >= svg.span / 50]
    peak = max([p.get('bandwidth', 0) for p in visible or passes] +
               [p.get('dirty-rate', 0) for p in passes] + [1])
    base = top + h

    def y_of(rate):
        return base - h * min(rate, peak) / peak

    svg.el('line', g, x1=LEFT, y1=top, x2=LEFT, y2=base, stroke='#888')
    svg.text(LEFT - 8, top + 4, fmt_rate(peak), g, text_anchor='end',
             font_size=10)
    svg.text(LEFT - 8, base, '0', g, text_anchor='end', font_size=10)
    points = []
    for p in passes:
        x0, x1 = svg.x(p.get('start-ms', 0)), svg.x(p.get('end-ms', 0))
        bw = p.get('bandwidth', 0)
        idx = p.get('index', len(points) + 1)
        svg.rect(x0, y_of(bw), x1 - x0, base - y_of(bw), BANDWIDTH_COLOR, g,
                 title=(f"pass {idx}: {fmt_ms(p.get('start-ms', 0))} - "
                        f"{fmt_ms(p.get('end-ms', 0))}, "
                        f"{fmt_bytes(p.get('bytes', 0))} at {fmt_rate(bw)}, "
                        f"{p.get('dirty-pages', 0)} pages dirtied at "
                        f"{fmt_rate(p.get('dirty-rate', 0))}"),
                 fill_opacity=0.75, stroke='white', **{'class': 'pass'})
        if x1 - x0 > 40:
            svg.text((x0 + x1) / 2, base - 4, f'pass {idx}', g,
                     text_anchor='middle', font_size=10, fill='white')
        if x1 - x0 > 60:
            svg.text((x0 + x1) / 2, y_of(bw) - 4, fmt_rate(bw), g,
                     text_anchor='middle', font_size=10)
        points.append(((x0 + x1) / 2, y_of(p.get('dirty-rate', 0))))
    svg.el('polyline', g, points=' '.join(f'{fmt_attr(x)},{fmt_attr(y)}'
                                         for x, y in points),
           fill='none', stroke=DIRTY_COLOR, stroke_width=2, id='dirty-rate')
    for x, y in points if len(points) <= 20 else []:   # else a blur
        svg.el('circle', g, cx=x, cy=y, r=3, fill=DIRTY_COLOR)
    svg.y = base + 10


def draw_multifd(svg, tl):
    """Each multifd channel's cumulative bytes as a line."""
    chans = [c for c in tl.get('multifd', []) if c.get('samples')]
    if not chans:
        return
    g = svg.el('g', id='multifd')
    h = 80
    top = svg.y + 20
    base = top + h
    svg.text(20, top - 6, 'multifd channels', g, font_weight='bold')
    peak = max(max(s.get('bytes', 0) for s in c['samples'])
               for c in chans) or 1
    svg.el('line', g, x1=LEFT, y1=top, x2=LEFT, y2=base, stroke='#888')
    svg.text(LEFT - 8, top + 4, fmt_bytes(peak), g, text_anchor='end',
             font_size=10)
    svg.text(LEFT - 8, base, '0', g, text_anchor='end', font_size=10)
    for i, c in enumerate(chans):
        color = CHANNEL_COLORS[i % len(CHANNEL_COLORS)]
        pts = [(svg.x(0), base)]
        pts += [(svg.x(s.get('ms', 0)), base - h * s.get('bytes', 0) / peak)
                for s in c['samples']]
        line = svg.el('polyline', g, fill='none', stroke=color,
                      stroke_width=1.5,
                      points=' '.join(f'{fmt_attr(x)},{fmt_attr(y)}'
                                      for x, y in pts))
        svg.el('title', line, f"channel {c.get('channel', i)}: "
               f"{fmt_bytes(c['samples'][-1].get('bytes', 0))}")
        svg.text(LEFT + 10 + 60 * i, top + 4, f"ch {c.get('channel', i)}",
                 g, font_size=11, fill=color, font_weight='bold')
    svg.y = base + 10


def draw_lanes(svg, tl, ident='lanes', title='status and devices'):
    """The migration's status, then one lane per VFIO device."""
    g = svg.el('g', id=ident)
    prefix = '' if ident == 'lanes' else ident + '-'
    top = svg.y + 20
    svg.text(20, top - 6, title, g, font_weight='bold')
    lane_h, gap = 20, 6
    y = top
    events = sorted(tl.get('events', []), key=lambda e: e.get('ms', 0))
    if events:
        segs = state_segments([(e.get('ms', 0), e.get('status', '?'))
                               for e in events], svg.span)
        lane = svg.el('g', g, id=f'{prefix}lane-status', **{'class': 'lane'})
        draw_lane(svg, lane, y, lane_h, 'status', segs, STATUS_COLORS)
        y += lane_h + gap
    for dev in tl.get('devices', []):
        arcs = sorted(dev.get('arcs', []), key=lambda a: a.get('ms', 0))
        name = dev.get('id', '?')
        changes = []
        if arcs:
            changes.append((0.0, arcs[0].get('from', '?')))
        changes += [(a.get('ms', 0), a.get('to', '?')) for a in arcs]
        # Each arc carries the bytes of state sent so far.
        sent = max([a.get('bytes', 0) for a in arcs] + [0])
        label = f'{name} \u00b7 {fmt_bytes(sent)}' if sent else name
        lane = svg.el('g', g, id=f'{prefix}lane-device-{name}',
                      **{'class': 'lane'})
        draw_lane(svg, lane, y, lane_h, label,
                  state_segments(changes, svg.span), DEVICE_STATE_COLORS)
        y += lane_h + gap
    svg.y = y


def draw_downtime_band(svg, tl, top, ident='downtime-band'):
    """The downtime shaded across the time panels from @top down."""
    down = tl.get('downtime', {})
    if 'start-ms' not in down or 'end-ms' not in down:
        return
    x0, x1 = svg.x(down['start-ms']), svg.x(down['end-ms'])
    band = svg.rect(x0, top, x1 - x0, svg.y - top, DOWNTIME_COLOR,
                    title=f"downtime {fmt_ms(down.get('ms', 0))}",
                    fill_opacity=0.25, id=ident)
    # Behind the panels, above the white background.
    svg.root.remove(band)
    svg.root.insert(0, band)


def switchover_window(tl, span):
    """The time around the downtime, when it is too short to see whole."""
    down = tl.get('downtime', {})
    if 'start-ms' not in down:
        return None
    start = down['start-ms']
    end = max([down.get('end-ms', start)] +
              [a.get('ms', 0) for d in tl.get('devices', [])
               for a in d.get('arcs', []) if a.get('ms', 0) >= start])
    end = min(end, span)
    if end - start > span / 5:
        return None         # the whole timeline shows it well enough
    pad = max((end - start) * 0.25, 0.01)
    return max(start - pad, 0.0), min(end + pad, span)


def draw_switchover(svg, tl):
    """The lanes again, zoomed in on the switchover."""
    window = switchover_window(tl, svg.span)
    if window is None:
        return
    svg.t0, svg.t1 = window
    top = svg.y + 10
    svg.y = top
    draw_lanes(svg, tl, 'switchover', 'switchover, zoomed')
    draw_downtime_band(svg, tl, top, 'switchover-band')
    svg.y = draw_axis(svg, svg.y + 6, top, 'switchover-axis',
                      tl['downtime']['start-ms'], 'time since the VM stopped')
    svg.t0, svg.t1 = 0.0, svg.span


def draw_downtime(svg, tl):
    """The downtime as one bar split by phase, with a row per phase."""
    down = tl.get('downtime', {})
    phases = down.get('phases', [])
    if not phases:
        return
    g = svg.el('g', id='downtime')
    total = down.get('ms') or sum(p.get('ms', 0) for p in phases) or 1.0
    top = svg.y + 30
    svg.text(20, top - 10, f'downtime: {fmt_ms(down.get("ms", total))}, '
             'by phase', g, font_weight='bold')
    h = 28
    x = LEFT
    for p in phases:
        name = p.get('name', '?')
        w = PLOT_W * p.get('ms', 0) / total
        svg.rect(x, top, w, h, color_of(name, PHASE_COLORS, svg.spares), g,
                 title=f"{name}: {fmt_ms(p.get('ms', 0))}",
                 stroke='white', **{'class': 'phase', 'data-phase': name})
        if w > text_width(name, 10):
            svg.text(x + w / 2, top + h / 2 + 4, name, g,
                     text_anchor='middle', font_size=10)
        x += w
    svg.text(LEFT - 8, top + h / 2 + 4, fmt_ms(total), g, text_anchor='end')
    y = top + h + 20
    for i, p in enumerate(phases):
        name = p.get('name', '?')
        col = i % 2
        row_y = y + (i // 2) * 18
        cx = LEFT + col * PLOT_W / 2
        svg.rect(cx, row_y - 10, 12, 12,
                 color_of(name, PHASE_COLORS, svg.spares), g)
        share = 100.0 * p.get('ms', 0) / total
        since = p.get('start-ms', 0) - down.get('start-ms', 0)
        svg.text(cx + 18, row_y, f"{name}  {fmt_ms(p.get('ms', 0))} "
                 f"({share:.0f} %), from +{fmt_ms(since)}", g, font_size=11)
    svg.y = y + ((len(phases) + 1) // 2) * 18


def draw_legend(svg, tl):
    """What each color of the time panels means."""
    g = svg.el('g', id='legend')
    top = svg.y + 20
    svg.text(20, top, 'legend', g, font_weight='bold')
    items = []
    if tl.get('passes'):
        items.append(('rect', BANDWIDTH_COLOR, 'pass: bandwidth'))
        items.append(('line', DIRTY_COLOR, 'dirty rate'))
    if 'start-ms' in tl.get('downtime', {}):
        items.append(('band', DOWNTIME_COLOR, 'downtime'))
    used = set()
    for dev in tl.get('devices', []):
        for a in dev.get('arcs', []):
            used.update((a.get('from'), a.get('to')))
    for state in list(DEVICE_STATE_COLORS) + sorted(s for s in used if s):
        if state in used:
            items.append(('rect', color_of(state, DEVICE_STATE_COLORS,
                                           svg.spares), f'device: {state}'))
            used.discard(state)
    for status in dict.fromkeys(e.get('status') for e in tl.get('events', [])):
        if status:
            items.append(('rect', color_of(status, STATUS_COLORS, svg.spares),
                          f'status: {status}'))
    per_row = 4
    for i, (kind, color, label) in enumerate(items):
        x = LEFT + (i % per_row) * PLOT_W / per_row
        y = top + 20 + (i // per_row) * 18
        if kind == 'line':
            svg.el('line', g, x1=x, y1=y - 4, x2=x + 12, y2=y - 4,
                   stroke=color, stroke_width=2)
        else:
            svg.rect(x, y - 10, 12, 12, color, g,
                     fill_opacity=0.25 if kind == 'band' else 1)
        svg.text(x + 18, y, label, g, font_size=11)
    svg.y = top + 20 + ((len(items) + per_row - 1) // per_row) * 18


# The members that hold lists of objects, and the lists inside those.
LIST_MEMBERS = {'events': None, 'passes': None, 'devices': 'arcs',
                'multifd': 'samples'}
NUMBER_KEYS = {'start', 'bytes', 'bandwidth', 'dirty-rate', 'dirty-pages', 'index',
               'channel'}
STRING_KEYS = {'status', 'from', 'to', 'id', 'name'}


def check_members(obj, where):
    """Raise ValueError unless @obj's known members have their types."""
    if not isinstance(obj, dict):
        raise ValueError(f"'{where}' must be an object")
    for key, value in obj.items():
        name = f'{where}.{key}' if where else key
        if key.endswith('ms') or key in NUMBER_KEYS:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"'{name}' must be a number")
        elif key in STRING_KEYS and not isinstance(value, str):
            raise ValueError(f"'{name}' must be a string")


def check_list(value, where):
    if not isinstance(value, list):
        raise ValueError(f"'{where}' must be a list")
    for i, item in enumerate(value):
        check_members(item, f'{where}[{i}]')


def check_timeline(tl):
    """Raise ValueError naming the first member of @tl of the wrong type."""
    if not isinstance(tl, dict):
        raise ValueError('a timeline must be a JSON object')
    check_members(tl, '')
    for member, inner in LIST_MEMBERS.items():
        check_list(tl.get(member, []), member)
        for i, item in enumerate(tl.get(member, []) if inner else []):
            check_list(item.get(inner, []), f'{member}[{i}].{inner}')
    check_members(tl.get('downtime', {}), 'downtime')
    check_list(tl.get('downtime', {}).get('phases', []), 'downtime.phases')


def render_svg(tl):
    """The timeline @tl (x-query-migration-timeline's reply) as SVG text."""
    check_timeline(tl)
    svg = Svg(timeline_span(tl))
    draw_title(svg, tl)
    panels_top = svg.y
    draw_passes(svg, tl)
    draw_multifd(svg, tl)
    draw_lanes(svg, tl)
    draw_downtime_band(svg, tl, panels_top)
    svg.y = draw_axis(svg, svg.y + 6, panels_top)
    draw_switchover(svg, tl)
    draw_downtime(svg, tl)
    draw_legend(svg, tl)
    return svg.finish()


def main(argv):
    if len(argv) != 3:
        print(f'usage: {argv[0]} TIMELINE.json OUT.svg', file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding='utf-8') as f:
            tl = json.load(f)
        write_svg(tl, argv[2])
    except (OSError, ValueError) as e:
        print(f'{argv[0]}: {argv[1]}: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
