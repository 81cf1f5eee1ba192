#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""
vmig's QMP schema generator (Python 3 standard library only).

Reads the schema files (one per subsystem, next to its code: a sequence
of Python/JSON dict literals with '##' doc comments, see
docs/devel/qapi.rst) and writes

  qapi-types.h     C enums, argument and member structs, handler prototypes
  qapi-tables.c    the type tables the generic marshaller walks, one
                   marshal wrapper per command, their registration, and
                   the query-qmp-schema text (SchemaInfo, names masked)
  qmp-reference.rst  the QMP reference for docs/interop

Usage: qapi-gen.py OUTDIR SCHEMA...
"""

import ast
import json
import os
import re
import sys

# builtin name -> (SchemaInfo json-type, C type, kind, min, max)
BUILTINS = {
    'str': ('string', 'const char *', 'QAPI_KIND_STR', None, None),
    'bool': ('boolean', 'bool', 'QAPI_KIND_BOOL', None, None),
    'number': ('number', 'double', 'QAPI_KIND_NUMBER', None, None),
    'int': ('int', 'int64_t', 'QAPI_KIND_INT', -2**63, 2**63 - 1),
    'int8': ('int', 'int64_t', 'QAPI_KIND_INT', -2**7, 2**7 - 1),
    'int16': ('int', 'int64_t', 'QAPI_KIND_INT', -2**15, 2**15 - 1),
    'int32': ('int', 'int64_t', 'QAPI_KIND_INT', -2**31, 2**31 - 1),
    'int64': ('int', 'int64_t', 'QAPI_KIND_INT', -2**63, 2**63 - 1),
    'uint8': ('int', 'uint64_t', 'QAPI_KIND_UINT', 0, 2**8 - 1),
    'uint16': ('int', 'uint64_t', 'QAPI_KIND_UINT', 0, 2**16 - 1),
    'uint32': ('int', 'uint64_t', 'QAPI_KIND_UINT', 0, 2**32 - 1),
    'uint64': ('int', 'uint64_t', 'QAPI_KIND_UINT', 0, 2**64 - 1),
    'size': ('int', 'uint64_t', 'QAPI_KIND_UINT', 0, 2**64 - 1),
    'any': ('value', 'JsonNode *', 'QAPI_KIND_ANY', None, None),
    'null': ('null', 'bool', 'QAPI_KIND_NULL', None, None),
}
# C values the struct does not need a has_ flag for: NULL means absent.
POINTER_KINDS = ('str', 'any', 'alternate')
META_KEYS = ('enum', 'struct', 'union', 'alternate', 'command', 'event')
EMPTY = 'q_empty'


class SchemaError(Exception):
    pass


C_KEYWORDS = {'auto', 'break', 'case', 'char', 'const', 'continue',
              'default', 'do', 'double', 'else', 'enum', 'extern', 'float',
              'for', 'goto', 'if', 'inline', 'int', 'long', 'register',
              'restrict', 'return', 'short', 'signed', 'sizeof', 'static',
              'struct', 'switch', 'typedef', 'union', 'unsigned', 'void',
              'volatile', 'while', 'bool',
              'unix', 'linux', 'i386'}  # the last: GNU C's predefined macros


def c_name(name):
    name = re.sub(r'[^A-Za-z0-9_]', '_', name)
    return 'q_' + name if name in C_KEYWORDS else name


def upper_name(name):
    """CamelCase or dashed to UPPER_CASE (MigrationStatus -> MIGRATION_STATUS)."""
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name)
    return c_name(s).upper()


def camel(name):
    return ''.join(p[:1].upper() + p[1:] for p in re.split(r'[-_]', name))


# ---- Reading the schema ----

def parse_doc(lines, where):
    """A '##' block: '@name:' then text, then '@member: text' lines."""
    doc = {'name': None, 'body': [], 'members': {}}
    current = None
    for raw in lines:
        text = raw[1:]
        if text.startswith(' '):
            text = text[1:]
        m = re.match(r'@([\w-]+):\s*(.*)$', text)
        if m and doc['name'] is None and not m.group(2):
            doc['name'] = m.group(1)
            continue
        if m:
            current = m.group(1)
            doc['members'][current] = m.group(2)
            continue
        if current is not None and text.strip():
            doc['members'][current] += ' ' + text.strip()
            continue
        current = None
        doc['body'].append(text.rstrip())
    if doc['name'] is None:
        raise SchemaError('%s: a doc block must start with "@NAME:"' % where)
    while doc['body'] and not doc['body'][0]:
        doc['body'].pop(0)
    while doc['body'] and not doc['body'][-1]:
        doc['body'].pop()
    return doc


class JsonNames(ast.NodeTransformer):
    """JSON's true and false where Python has True and False."""
    def visit_Name(self, node):
        if node.id in ('true', 'false'):
            return ast.copy_location(ast.Constant(node.id == 'true'), node)
        return node


def read_schema(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    lines = text.split('\n')
    # doc blocks by the line number (1-based) of their closing '##'
    docs = {}
    i = 0
    while i < len(lines):
        if lines[i].strip() == '##':
            start = i
            i += 1
            while i < len(lines) and lines[i].strip() != '##':
                if not lines[i].startswith('#'):
                    raise SchemaError('%s:%d: unterminated doc block'
                                      % (path, start + 1))
                i += 1
            docs[i + 1] = parse_doc(lines[start + 1:i],
                                    '%s:%d' % (path, start + 1))
        i += 1
    try:
        tree = ast.parse(text, path)
    except SyntaxError as e:
        raise SchemaError('%s:%s: %s' % (path, e.lineno, e.msg))
    exprs = []
    for stmt in tree.body:
        where = '%s:%d' % (path, stmt.lineno)
        if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value,
                                                             ast.Dict):
            raise SchemaError('%s: expected a definition {...}' % where)
        expr = ast.literal_eval(JsonNames().visit(stmt.value))
        meta = [k for k in META_KEYS if k in expr]
        if len(meta) != 1:
            raise SchemaError('%s: a definition needs exactly one of %s'
                              % (where, ', '.join(META_KEYS)))
        doc = docs.get(stmt.lineno - 1)
        if doc is None:
            raise SchemaError('%s: %s has no doc block right above it'
                              % (where, expr[meta[0]]))
        if doc['name'] != expr[meta[0]]:
            raise SchemaError('%s: doc block names %s, not %s'
                              % (where, doc['name'], expr[meta[0]]))
        exprs.append((meta[0], expr, doc, where))
    return exprs


# ---- The schema model ----

class Schema:
    def __init__(self, paths):
        self.types = {}          # name -> dict(meta, expr, doc, ...)
        self.commands = []
        self.events = []
        self.types[EMPTY] = {'meta': 'struct', 'name': EMPTY, 'members': [],
                             'doc': None, 'where': '(builtin)'}
        for path in paths:
            for meta, expr, doc, where in read_schema(path):
                self.add(meta, expr, doc, where)
        for t in list(self.types.values()):
            self.resolve_type(t)
        for c in self.commands + self.events:
            self.check_entity(c)

    def add(self, meta, expr, doc, where):
        name = expr[meta]
        entity = {'meta': meta, 'name': name, 'expr': expr, 'doc': doc,
                  'where': where, 'features': expr.get('features', [])}
        if meta in ('command', 'event'):
            coll = self.commands if meta == 'command' else self.events
            if any(e['name'] == name for e in coll):
                raise SchemaError('%s: %s %s defined twice' % (where, meta,
                                                                name))
            entity['data'] = self.implicit(expr.get('data'), name, where,
                                           doc)
            if meta == 'command':
                entity['returns'] = expr.get('returns')
                entity['negotiation'] = expr.get('x-negotiation', False)
                entity['allow-oob'] = expr.get('allow-oob', False)
            coll.append(entity)
            return
        if name in self.types or name in BUILTINS:
            raise SchemaError('%s: type %s defined twice' % (where, name))
        self.types[name] = entity

    def implicit(self, data, owner, where, doc):
        """A command's or event's 'data': a type name or inline members."""
        if data is None:
            return EMPTY
        if isinstance(data, str):
            return data
        name = 'q_obj_%s-arg' % owner
        self.types[name] = {'meta': 'struct', 'name': name,
                            'expr': {'data': data}, 'doc': doc,
                            'where': where, 'implicit': True,
                            'features': []}
        return name

    def members_of(self, data, where, doc):
        members = []
        for key, typ in data.items():
            optional = key.startswith('*')
            mname = key[1:] if optional else key
            if isinstance(typ, list):
                if len(typ) != 1:
                    raise SchemaError('%s: member %s: an array type is '
                                      '[TYPE]' % (where, mname))
                typ = '[%s]' % typ[0]
            members.append({'name': mname, 'type': typ,
                            'optional': optional,
                            'doc': doc['members'].get(mname, '')
                            if doc else ''})
            if doc and mname not in doc['members']:
                raise SchemaError('%s: member %s is not documented'
                                  % (where, mname))
        return members

    def lookup(self, typ, where):
        if typ.startswith('['):
            self.lookup(typ[1:-1], where)
            return
        if typ not in BUILTINS and typ not in self.types:
            raise SchemaError('%s: unknown type %s' % (where, typ))

    def resolve_type(self, t):
        if t['name'] == EMPTY:
            return
        expr, where, doc = t['expr'], t['where'], t['doc']
        if t['meta'] == 'enum':
            t['values'] = list(expr['data'])
            if len(set(t['values'])) != len(t['values']):
                raise SchemaError('%s: enum %s repeats a value'
                                  % (where, t['name']))
            for v in t['values']:
                if doc and not t.get('implicit') and v not in doc['members']:
                    raise SchemaError('%s: value %s of %s is not documented'
                                      % (where, v, t['name']))
            return
        if t['meta'] == 'alternate':
            t['alternatives'] = [self.members_of({k: v}, where, doc)[0]
                                 for k, v in expr['data'].items()]
            for a in t['alternatives']:
                self.lookup(a['type'], where)
            return
        base = expr.get('base', {})
        if isinstance(base, str):
            self.lookup(base, where)
            t['base'] = base
            members = []
        else:
            members = self.members_of(base, where, doc)
        if t['meta'] == 'struct':
            members += self.members_of(expr.get('data', {}), where, doc)
        t['members'] = members
        for m in members:
            self.lookup(m['type'], where)
        if t['meta'] == 'union':
            t['tag'] = expr['discriminator']
            t['variants'] = []
            for case, vtype in expr['data'].items():
                self.lookup(vtype, where)
                t['variants'].append({'case': case, 'type': vtype})

    def check_entity(self, e):
        self.lookup(e['data'], e['where'])
        if self.types[e['data']]['meta'] not in ('struct', 'union'):
            raise SchemaError('%s: %s data must be an object type'
                              % (e['where'], e['name']))
        if e['meta'] == 'command' and e['returns'] is not None:
            r = e['returns']
            e['returns'] = '[%s]' % r[0] if isinstance(r, list) else r
            self.lookup(e['returns'], e['where'])

    def all_members(self, name):
        """Members of an object type with its named base first."""
        t = self.types[name]
        base = self.all_members(t['base']) if t.get('base') else []
        return base + t['members']

    def tag_type(self, union):
        for m in self.all_members(union['name']):
            if m['name'] == union['tag']:
                return self.types[m['type']]
        raise SchemaError('%s: discriminator %s is not a member'
                          % (union['where'], union['tag']))


# ---- C ----

def c_type_name(schema, typ):
    if typ.startswith('['):
        elem = typ[1:-1]
        return 'Qapi%sList' % (camel(elem) if elem in BUILTINS else elem)
    if typ in BUILTINS:
        return BUILTINS[typ][1]
    t = schema.types[typ]
    if t['meta'] == 'alternate':
        return 'JsonNode *'
    if t.get('implicit'):
        return 'Qapi%sArgs' % camel(typ[len('q_obj_'):-len('-arg')])
    if typ == EMPTY:
        return 'QapiEmpty'
    return 'Qapi' + typ


def kind_of(schema, typ):
    if typ.startswith('['):
        return 'array'
    if typ in BUILTINS:
        return typ
    return schema.types[typ]['meta']


def type_table(typ):
    if typ.startswith('['):
        return 'qapi_type_list_' + c_name(typ[1:-1])
    return 'qapi_type_' + c_name(typ)


def arrays_used(schema):
    found = []

    def note(typ):
        if typ.startswith('[') and typ not in found:
            found.append(typ)
    for t in schema.types.values():
        for m in t.get('members', []):
            note(m['type'])
        for a in t.get('alternatives', []):
            note(a['type'])
    for c in schema.commands:
        if c['returns']:
            note(c['returns'])
    return found


def ordered_types(schema):
    """Object types with every embedded type before its user."""
    done, out = set(), []

    def visit(name):
        if name in done or name in BUILTINS:
            return
        if name.startswith('['):
            visit(name[1:-1])
            done.add(name)
            out.append(name)
            return
        done.add(name)
        t = schema.types[name]
        if t.get('base'):
            visit(t['base'])
        for m in t.get('members', []):
            # a list holds a pointer: its element may come later
            if not m['type'].startswith('['):
                visit(m['type'])
        for v in t.get('variants', []):
            visit(v['type'])
        out.append(name)
    for name in schema.types:
        visit(name)
    for typ in arrays_used(schema):
        if typ not in done:
            out.append(typ)
    return out


def gen_header(schema):
    out = ['/* Generated by scripts/qapi-gen.py from the QMP schema: do not '
           'edit. */',
           '#ifndef QAPI_TYPES_H', '#define QAPI_TYPES_H', '',
           '#include "monitor/qapi.h"', '']
    for name, t in schema.types.items():
        if t['meta'] != 'enum':
            continue
        prefix = t['expr'].get('prefix', upper_name(name))
        out.append('typedef enum Qapi%s {' % name)
        for v in t['values']:
            out.append('    QAPI_%s_%s,' % (prefix, re.sub(r'\W', '_', v).upper()))
        out.append('    QAPI_%s__MAX,' % prefix)
        out.append('} Qapi%s;' % name)
        out.append('')
    structs = [t for t in ordered_types(schema)
               if kind_of(schema, t) in ('array', 'struct', 'union')]
    for typ in structs:
        cname = c_type_name(schema, typ)
        out.append('typedef struct %s %s;' % (cname, cname))
    out.append('')
    for typ in structs:
        cname = c_type_name(schema, typ)
        out.append('struct %s {' % cname)
        if kind_of(schema, typ) == 'array':
            elem = c_type_name(schema, typ[1:-1])
            out.append('    size_t len;')
            out.append('    %s%s*v;' % (elem, '' if elem.endswith('*')
                                           else ' '))
            out.append('};')
            out.append('')
            continue
        t = schema.types[typ]
        if t.get('base'):
            out.append('    %s base;' % c_type_name(schema, t['base']))
        if not t['members'] and not t.get('base') and not t.get('variants'):
            out.append('    char unused;')
        for m in t['members']:
            mk = kind_of(schema, m['type'])
            ctype = c_type_name(schema, m['type'])
            if mk == 'array':
                ctype += ' *'
            if m['optional'] and mk not in POINTER_KINDS and mk != 'array':
                out.append('    bool has_%s;' % c_name(m['name']))
            sep = '' if ctype.endswith('*') else ' '
            out.append('    %s%s%s;' % (ctype, sep, c_name(m['name'])))
        if t.get('variants'):
            out.append('    union {')
            for v in t['variants']:
                out.append('        %s %s;' % (c_type_name(schema, v['type']),
                                               c_name(v['case'])))
            out.append('    } u;')
        out.append('};')
        out.append('')
    for typ in list(BUILTINS) + list(schema.types) + arrays_used(schema):
        out.append('extern const QapiType %s;' % type_table(typ))
    out.append('')
    for c in schema.commands:
        args = schema.types[c['data']]
        proto = 'void qmp_%s(' % c_name(c['name'])
        if args['members'] or args.get('base') or args.get('variants'):
            proto += 'const %s *args, ' % c_type_name(schema, c['data'])
        out.append(proto + 'JsonNode **ret, Error **errp);')
    out += ['', '/* Every command and event of the schema, for the monitor. */',
            'extern const QapiCommand qapi_commands[];',
            'extern const size_t qapi_commands_count;',
            'extern const QapiEvent qapi_events[];',
            'extern const size_t qapi_events_count;',
            '/* The reply of query-qmp-schema, as JSON text. */',
            'extern const char qapi_introspection_json[];',
            '', '#endif', '']
    return '\n'.join(out)


def c_string(s):
    return json.dumps(s)


def gen_member_table(schema, owner_c, members, where_c):
    rows = []
    for m in members:
        mk = kind_of(schema, m['type'])
        has = ('offsetof(%s, has_%s)' % (owner_c, c_name(m['name']))
               if m['optional'] and mk not in POINTER_KINDS and mk != 'array'
               else 'QAPI_NO_HAS')
        rows.append('    { %s, &%s, %s, offsetof(%s, %s), %s },'
                    % (c_string(m['name']), type_table(m['type']),
                       'true' if m['optional'] else 'false', owner_c,
                       where_c + c_name(m['name']), has))
    return rows


def gen_tables(schema, introspection):
    out = ['/* Generated by scripts/qapi-gen.py from the QMP schema: do not '
           'edit. */',
           '#include "qemu/osdep.h"', '#include "qapi/qapi-types.h"', '']
    for b, (jt, ctype, kind, lo, hi) in BUILTINS.items():
        rng = ''
        if lo is not None:
            bits = {2**7 - 1: '8', 2**15 - 1: '16', 2**31 - 1: '32'}
            width = bits.get(hi, bits.get((hi - 1) // 2, '64'))
            if kind == 'QAPI_KIND_INT':
                rng = ', .min = INT%s_MIN, .max = INT%s_MAX' % (width, width)
            else:
                rng = ', .max = UINT%s_MAX' % width
        out.append('const QapiType %s = { .name = "%s", .kind = %s, '
                   '.size = sizeof(%s)%s };'
                   % (type_table(b), b, kind, ctype, rng))
    out.append('')
    for typ in ordered_types(schema):
        kind = kind_of(schema, typ)
        if kind == 'array':
            elem = typ[1:-1]
            out.append('const QapiType %s = { .name = %s, .kind = '
                       'QAPI_KIND_ARRAY, .size = sizeof(%s *), '
                       '.element = &%s };'
                       % (type_table(typ), c_string(typ),
                          c_type_name(schema, typ), type_table(elem)))
            continue
        t = schema.types[typ]
        tt = type_table(typ)
        if kind == 'enum':
            out.append('static const char *const %s_values[] = {' % tt)
            out += ['    %s,' % c_string(v) for v in t['values']]
            out.append('};')
            out.append('const QapiType %s = { .name = %s, .kind = '
                       'QAPI_KIND_ENUM, .size = sizeof(int), .values = '
                       '%s_values, .nvalues = %d };'
                       % (tt, c_string(typ), tt, len(t['values'])))
            continue
        if kind == 'alternate':
            out.append('static const QapiType *const %s_alts[] = {' % tt)
            out += ['    &%s,' % type_table(a['type'])
                    for a in t['alternatives']]
            out.append('    NULL,')
            out.append('};')
            out.append('const QapiType %s = { .name = %s, .kind = '
                       'QAPI_KIND_ALTERNATE, .size = sizeof(JsonNode *), '
                       '.alternatives = %s_alts };' % (tt, c_string(typ), tt))
            continue
        cname = c_type_name(schema, typ)
        rows = gen_member_table(schema, cname, t['members'], '')
        out.append('static const QapiMember %s_members[] = {' % tt)
        out += rows
        out.append('    { NULL }')
        out.append('};')
        extra = ''
        if t.get('base'):
            extra += ', .base = &%s' % type_table(t['base'])
        if t.get('variants'):
            tag = schema.tag_type(t)
            out.append('static const QapiVariant %s_variants[] = {' % tt)
            for v in t['variants']:
                if v['case'] not in tag['values']:
                    raise SchemaError('%s: %s is not a value of %s'
                                      % (t['where'], v['case'], tag['name']))
                out.append('    { %d, &%s, offsetof(%s, u.%s) },'
                           % (tag['values'].index(v['case']),
                              type_table(v['type']), cname, c_name(v['case'])))
            out.append('    { -1 }')
            out.append('};')
            extra += ', .tag = %s, .variants = %s_variants' % (
                c_string(t['tag']), tt)
        out.append('const QapiType %s = { .name = %s, .kind = '
                   'QAPI_KIND_OBJECT, .size = sizeof(%s), .members = '
                   '%s_members%s };' % (tt, c_string(typ), cname, tt, extra))
    out.append('')
    for c in schema.commands:
        cn = c_name(c['name'])
        args = schema.types[c['data']]
        has_args = args['members'] or args.get('base') or args.get('variants')
        out.append('static void qmp_marshal_%s(const void *args, '
                   'JsonNode **ret, Error **errp)' % cn)
        out.append('{')
        out.append('    qmp_%s(%sret, errp);' % (cn, 'args, ' if has_args
                                                  else ''))
        out.append('}')
        out.append('')
    out.append('const QapiCommand qapi_commands[] = {')
    for c in schema.commands:
        ret = ('&' + type_table(c['returns'])) if c['returns'] else 'NULL'
        out.append('    { %s, &%s, %s, qmp_marshal_%s, %s },'
                   % (c_string(c['name']), type_table(c['data']), ret,
                      c_name(c['name']),
                      'QMP_CMD_NEGOTIATION' if c['negotiation']
                      else 'QMP_CMD_NONE'))
    out.append('};')
    out.append('const size_t qapi_commands_count = %d;' % len(schema.commands))
    out.append('')
    out.append('const QapiEvent qapi_events[] = {')
    for e in schema.events:
        out.append('    { %s, &%s },' % (c_string(e['name']),
                                         type_table(e['data'])))
    out.append('};')
    out.append('const size_t qapi_events_count = %d;' % len(schema.events))
    out.append('')
    out.append('const char qapi_introspection_json[] =')
    text = json.dumps(introspection, separators=(',', ':'))
    for i in range(0, len(text), 72):
        out.append('    %s' % c_string(text[i:i + 72]))
    out.append('    ;')
    out.append('')
    return '\n'.join(out)


# ---- query-qmp-schema ----

def introspect(schema):
    """SchemaInfo entries: commands and events, then every type they use;
    type names other than builtins become numbers, as QEMU masks them."""
    names = {}
    queue, entries, emitted = [], [], set()

    def use(typ):
        if typ.startswith('['):
            return '[%s]' % use(typ[1:-1])
        if typ in BUILTINS:
            if typ not in emitted:
                queue.append(typ)
            return typ
        if typ not in names:
            names[typ] = str(len(names))
            queue.append(typ)
        return names[typ]

    def features(e, info):
        if e.get('features'):
            info['features'] = list(e['features'])
        return info

    for c in schema.commands:
        info = {'name': c['name'], 'meta-type': 'command',
                'arg-type': use(c['data']),
                'ret-type': use(c['returns'] or EMPTY)}
        if c['allow-oob']:
            info['allow-oob'] = True
        entries.append(features(c, info))
    for e in schema.events:
        entries.append(features(e, {'name': e['name'], 'meta-type': 'event',
                                    'arg-type': use(e['data'])}))
    arrays = set()
    while queue:
        typ = queue.pop(0)
        if typ in emitted:
            continue
        emitted.add(typ)
        if typ in BUILTINS:
            entries.append({'name': typ, 'meta-type': 'builtin',
                            'json-type': BUILTINS[typ][0]})
            continue
        t = schema.types[typ]
        info = {'name': names[typ]}
        if t['meta'] == 'enum':
            info.update({'meta-type': 'enum',
                         'members': [{'name': v} for v in t['values']],
                         'values': list(t['values'])})
        elif t['meta'] == 'alternate':
            info.update({'meta-type': 'alternate',
                         'members': [{'type': use(a['type'])}
                                     for a in t['alternatives']]})
        else:
            members = []
            for m in schema.all_members(typ):
                mi = {'name': m['name'], 'type': use(m['type'])}
                if m['optional']:
                    mi['default'] = None
                members.append(mi)
            info.update({'meta-type': 'object', 'members': members})
            if t.get('variants'):
                info['tag'] = t['tag']
                info['variants'] = [{'case': v['case'],
                                     'type': use(v['type'])}
                                    for v in t['variants']]
        entries.append(features(t, info))
        for m in info.get('members', []):
            elem = m.get('type', '')
            while elem.startswith('['):
                if elem not in arrays:
                    arrays.add(elem)
                    entries.append({'name': elem, 'meta-type': 'array',
                                    'element-type': elem[1:-1]})
                elem = elem[1:-1]
    for c in entries:
        if c['meta-type'] == 'command' and c['ret-type'].startswith('['):
            r = c['ret-type']
            if r not in arrays:
                arrays.add(r)
                entries.append({'name': r, 'meta-type': 'array',
                                'element-type': r[1:-1]})
    return entries


# ---- The QMP reference ----

def rst_type(typ):
    if typ.startswith('['):
        return '[%s]' % rst_type(typ[1:-1])
    return typ if typ in BUILTINS else '`%s`_' % typ


def rst_members(schema, members):
    out = []
    for m in members:
        opt = ' (optional)' if m['optional'] else ''
        out.append('``%s``: %s%s' % (m['name'], rst_type(m['type']), opt))
        out.append('   %s' % (m['doc'] or '(not documented)'))
        out.append('')
    return out


def gen_rst(schema, sources):
    out = ['.. Generated by scripts/qapi-gen.py from %s: do not edit.'
           % ', '.join(sources),
           '   Change the schema and run ``ninja -C build '
           'update-qmp-reference``.', '',
           '=============',
           'QMP reference',
           '=============', '',
           'Every command, event and type of vmig\'s QMP schema.  '
           '``query-qmp-schema``',
           'returns the same schema to clients (type names masked as in '
           'QEMU).', '']

    def section(title, char):
        out.extend([title, char * len(title), ''])

    def body(doc):
        if doc and doc['body']:
            out.extend(doc['body'])
            out.append('')

    section('Commands', '=')
    for c in schema.commands:
        section(c['name'], '-')
        body(c['doc'])
        args = schema.types[c['data']]
        if c['data'] == EMPTY:
            out += ['Arguments: none.', '']
        elif args.get('implicit'):
            out += ['Arguments:', '']
            out += rst_members(schema, args['members'])
        else:
            out += ['Arguments: the members of %s.' % rst_type(c['data']), '']
        out += ['Returns: %s.' % (rst_type(c['returns']) if c['returns']
                                  else 'nothing (``{}``)'), '']
        if c['features']:
            out += ['Features: %s.' % ', '.join(c['features']), '']
    section('Events', '=')
    for e in schema.events:
        section(e['name'], '-')
        body(e['doc'])
        data = schema.types[e['data']]
        if e['data'] == EMPTY:
            out += ['Data: none.', '']
        else:
            out += ['Data:', '']
            out += rst_members(schema, data['members'])
    section('Types', '=')
    for name, t in sorted(schema.types.items()):
        if t.get('implicit') or name == EMPTY:
            continue
        section(name, '-')
        body(t['doc'])
        if t['meta'] == 'enum':
            out += ['An enumeration:', '']
            for v in t['values']:
                out += ['``"%s"``' % v, '   %s' % t['doc']['members'][v], '']
        elif t['meta'] == 'alternate':
            out += ['One of:', '']
            out += rst_members(schema, t['alternatives'])
        else:
            if t.get('base'):
                out += ['The members of %s, and:' % rst_type(t['base']), '']
            out += rst_members(schema, t['members'])
            if t.get('variants'):
                out += ['By the value of ``%s``:' % t['tag'], '']
                for v in t['variants']:
                    out += ['``"%s"``' % v['case'],
                            '   the members of %s' % rst_type(v['type']), '']
    while out[-1] == '':
        out.pop()
    return '\n'.join(out) + '\n'


def main(argv):
    if len(argv) < 3:
        sys.stderr.write('usage: qapi-gen.py OUTDIR SCHEMA...\n')
        return 2
    outdir, paths = argv[1], argv[2:]
    try:
        schema = Schema(paths)
        files = {
            'qapi-types.h': gen_header(schema),
            'qapi-tables.c': gen_tables(schema, introspect(schema)),
            'qmp-reference.rst': gen_rst(schema, [os.path.relpath(
                p, os.path.dirname(os.path.dirname(os.path.abspath(
                    __file__)))) for p in paths]),
        }
    except (SchemaError, KeyError, ValueError) as e:
        sys.stderr.write('qapi-gen.py: %s\n' % e)
        return 1
    for name, text in files.items():
        with open(os.path.join(outdir, name), 'w', encoding='utf-8') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
