#!/usr/bin/env python3
"""The call graph between cri/'s files, from the symbols of their objects.

    cri_layers.py OBJDIR [--dot]

Each cri/X.c.o defines global functions and references undefined ones; an
edge X -> Y is X calling a function (or naming an object: the handler ops
tables) Y defines. methods.c, which joins every RPC file's method table,
is the top and its edges are left out: a registration, not a call.
Fails when an RPC handler file calls a function defined in another RPC
handler file (they call down into the shared layer, the handler ops and the
model, never across), or when the graph has a cycle. --dot prints it.
"""
import os
import subprocess
import sys

# The files that implement CRI RPCs. They reach each other's work only
# through the layer below (ctr_state.c, the handler ops, the model).
RPC = {"pods.c", "containers.c", "ctr_status.c", "pod_status.c", "streaming.c", "stats.c",
       "pod_metrics.c", "image_io.c", "images.c", "ctr_update.c", "ctr_exec.c", "info.c"}

# Joins the RPC files' handler tables; the server dispatches through it.
TOP = {"methods.c"}


def symbols(path):
    out = subprocess.run(["nm", "-g", path], check=True, capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDRB":
            defined.add(parts[2])
    return defined, undefined


def graph(objdir):
    objs = sorted(f for f in os.listdir(objdir) if f.endswith(".c.o"))
    if not objs:
        sys.exit("no objects in " + objdir)
    owner, uses = {}, {}
    for o in objs:
        name = o[:-2]
        d, u = symbols(os.path.join(objdir, o))
        for s in d:
            owner[s] = name
        uses[name] = u
    edges = {}
    for name, u in uses.items():
        if name in TOP:
            continue
        for s in u:
            t = owner.get(s)
            if t and t != name:
                edges.setdefault(name, {}).setdefault(t, set()).add(s)
    return sorted(uses), edges


def cycle(nodes, edges):
    state = {}

    def visit(n, path):
        state[n] = 1
        for t in sorted(edges.get(n, {})):
            if state.get(t) == 1:
                return path + [n, t]
            if t not in state:
                c = visit(t, path + [n])
                if c:
                    return c
        state[n] = 2
        return None

    for n in nodes:
        if n not in state:
            c = visit(n, [])
            if c:
                return c[c.index(c[-1]):]
    return None


def main():
    objdir = sys.argv[1]
    nodes, edges = graph(objdir)
    if "--dot" in sys.argv:
        print("digraph cri {")
        for a in nodes:
            for b in sorted(edges.get(a, {})):
                print('  "%s" -> "%s";' % (a, b))
        print("}")
        return 0
    bad = 0
    for a in nodes:
        for b, syms in sorted(edges.get(a, {}).items()):
            if a in RPC and b in RPC:
                print("%s calls %s of %s (RPC files call down, never across)" % (a, ", ".join(sorted(syms)), b))
                bad += 1
    c = cycle(nodes, edges)
    if c:
        print("cycle: " + " -> ".join(c))
        bad += 1
    print("%d files, %d edges, %d violations" % (len(nodes), sum(len(v) for v in edges.values()), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
