"""Reporting for the peer runner (run.py): speed ratios, the quiet-machine marks, the tables of
<out>/<model>.md and the PNG plots."""

import statistics

from measure import other_cpus
from settings import MODELS, OTHER_CPU_LIMIT, PLOTS

# ------------------------------------------------------------------------------------------- reporting


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def speed_ratio(times, fast, slow):
    """Median over rounds of slow-time / fast-time (> 1: `fast` is faster)."""
    return med([s / f for f, s in zip(times[fast], times[slow])])


def is_int8_peer(name):
    """Peers that compete as "the fastest peer int8": every ORT int8 variant with AMX allowed, llama.cpp Q8_0.
    The AMX-denied line is reported on its own."""
    return (name.startswith("ort-int8") and "noamx" not in name and "inproc" not in name) or name == "llama-q8_0"


def vs_fastest(times, octet, pick):
    """Median over rounds of (fastest picked peer's time in that round / octet's time), and that peer's name."""
    peers = [p for p in times if pick(p) and times.get(p)]
    if not peers or not times.get(octet):
        return None, None
    ratios, winners = [], []
    for r, o in enumerate(times[octet]):
        best = min(peers, key=lambda p: times[p][r])
        ratios.append(times[best][r] / o)
        winners.append(best)
    return med(ratios), max(set(winners), key=winners.count)


def point_quiet(res, key, names):
    """True when every named engine's blocks at point `key` saw <= OTHER_CPU_LIMIT other CPUs."""
    other = res.get("other", {}).get(key, {})
    vals = [other_cpus(other[n], res["cpus"]) for n in names if n in other]
    return all(v <= OTHER_CPU_LIMIT for v in vals)


def mark(text, quiet):
    return text if quiet else f"{text}~"


def targets(res):
    """Issue 13's targets with the measured figures; a figure from a busy block does not count."""
    rows = []
    model = res["model"]
    cols = res["points"] + (["corpus"] if res["corpus"] else [])

    def row(target, cells, goal_ok):
        """cells: {label: (value, quiet)}; the verdict counts only quiet cells."""
        if not cells:
            rows.append(f"| {target} | n/a | not measured |")
            return
        text = ", ".join(mark(f"{v:.2f}x ({k})", q) for k, (v, q) in cells.items())
        counted = [v for v, q in cells.values() if q]
        if len(counted) < len(cells):
            verdict = "**does not count** (busy)" if not counted else (
                "met where quiet" if all(goal_ok(v) for v in counted) else "**missed**")
        else:
            verdict = "met" if all(goal_ok(v) for v in counted) else "**missed**"
        rows.append(f"| {target} | {text} | {verdict} |")

    def ratio_cells(fast, slow_pick, points):
        cells, names = {}, set()
        for p in points:
            for t in res["threads"]:
                key = f"{t}/{p}"
                times = res["times"].get(key, {})
                v, who = vs_fastest(times, fast, slow_pick)
                if v is not None:
                    cells[f"{p} {t}T"] = (v, point_quiet(res, key, [fast] + [n for n in times if slow_pick(n)]))
                    names.add(who)
        return cells, ", ".join(sorted(names))

    if model == "minilm":
        for point, goal in [(p, {"1x16": 3.0}.get(p, 1.5)) for p in cols]:
            cells, who = ratio_cells("octet-int8", is_int8_peer, [point])
            row(f"octet int8 >= {goal}x the fastest peer int8 at {point} ({who})", cells, lambda v, g=goal: v >= g)
        cells, who = ratio_cells("octet-int8", is_int8_peer, ["32x128"])
        row(f"octet int8 >= 3x the fastest peer int8 at 32x128 with AMX ({who + '; ' if who else ''}octet's kernel as dispatched)",
            cells, lambda v: v >= 3)
        # On an AMX CPU the VNNI-only side of octet is its own engine; elsewhere octet-int8 is VNNI already.
        vnni = "octet-int8-vnni" if "octet-int8-vnni" in res["engines"] else "octet-int8"
        cells, who = ratio_cells(vnni, lambda n: n == "ort-int8-noamx", ["32x128"])
        row(f"octet int8 >= 2x at 32x128, VNNI only ({vnni} vs ORT with AMX denied)", cells, lambda v: v >= 2)
        cells, who = ratio_cells("octet-f32", lambda n: n.startswith("ort-f32"), cols)
        row(f"octet f32 >= the fastest ORT f32 everywhere ({who})", cells, lambda v: v >= 1)
        cells, _ = ratio_cells("octet-int8", lambda n: n == "octet-f32", ["32x128"])
        row("octet int8 >= 3x octet f32 at 32x128", cells, lambda v: v >= 3)
    else:
        cells, who = ratio_cells("octet-int8", lambda n: is_int8_peer(n) and n.startswith("ort"), cols)
        row(f"octet int8 >= 1.5x ORT int8 (with AMX where the CPU has it) at every point ({who})", cells,
            lambda v: v >= 1.5)
        cells, who = ratio_cells("octet-int8", lambda n: n == "llama-q8_0", cols)
        row("octet int8 >= 4x llama.cpp Q8_0 at every point", cells, lambda v: v >= 4)
    q = res["quality"].get("octet-int8")
    if q and model == "gemma":
        ok = q[0] >= 0.999 and q[1] >= 0.998
        rows.append(f"| octet int8 quality on the corpus with prompts >= 0.999 mean / 0.998 min | {q[0]:.5f} / {q[1]:.5f} | "
                    f"{'met' if ok else '**missed**'} |")
    cold_goal = {"minilm": 25, "gemma": 400}[model]
    cold = res["cold"].get("octet-int8 process start to first vector (spawn to exit, 2 threads)")
    cold_label = "octet-int8 process start to first vector (spawn to exit, 2 threads)"
    if cold is not None:
        quiet = res.get("cold_other", {}).get(cold_label, 0.0) <= OTHER_CPU_LIMIT
        verdict = ("met" if cold <= cold_goal else "**missed**") if quiet else "**does not count** (busy)"
        rows.append(f"| cold start {model} int8 <= {cold_goal} ms | {mark(f'{cold:.1f} ms', quiet)} | {verdict} |")
    rss = res["rss"].get("octet-int8 corpus run, 2 threads")
    if rss:
        extra = (rss["peak_rss_bytes"] - rss["file_bytes"]) / 1e6
        rows.append(f"| peak RSS, {model} int8 corpus run <= file size + 40 MB | {rss['peak_rss_bytes'] / 1e6:.1f} MB = "
                    f"file {rss['file_bytes'] / 1e6:.1f} MB + {extra:.1f} MB | {'met' if extra <= 40 else '**missed**'} |")
    head = ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def write_report(res, out_md):
    lines = []
    add = lines.append
    engines = res["engines"]
    cols = res["points"] + (["corpus"] if res["corpus"] else [])
    title = MODELS[res["model"]]["title"]
    add(f"Run {res['date']}; CPU {res['cpu'][0]} ({res['cpu'][1]}); ONNX Runtime {res.get('ort_version', '?')}; "
        f"AMX permission in the plain ORT worker: {res.get('amx', {}).get('plain', '?')}, in the noamx worker: "
        f"{res.get('amx', {}).get('noamx', 'not run')}.")
    if res.get("waitidle"):
        add(f"waitidle.sh: `{res['waitidle']}`")
    add(f"Load average at the start `{res['load_start']}`, at the end `{res['load_end']}`. "
        f"`~` marks a figure whose blocks saw more than {OTHER_CPU_LIMIT} other CPUs on average: it does not count.")
    add("")
    for t in res["threads"]:
        add(f"### {title}, {t} thread{'s' if t > 1 else ''}: ms per call (median of {res['rounds']} interleaved rounds)")
        add("")
        add("| engine | " + " | ".join(c if c != "corpus" else "corpus texts/s" for c in cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for e in engines:
            cells = []
            for p in cols:
                key = f"{t}/{p}"
                ms = res["times"].get(key, {}).get(e)
                if not ms:
                    cells.append("n/a")
                    continue
                text = f"{res['corpus_size'] / (med(ms) / 1e3):.0f}" if p == "corpus" else f"{med(ms):.2f}"
                cells.append(mark(text, point_quiet(res, key, [e])))
            add(f"| {e} | " + " | ".join(cells) + " |")
        others, loads = [], []
        for p in cols:
            key = f"{t}/{p}"
            o = res.get("other", {}).get(key, {})
            vals = [other_cpus(v, res["cpus"]) for v in o.values()]
            others.append(f"{max(vals):.2f}" if vals else "n/a")
            ld = res.get("load", {}).get(key)
            loads.append(f"{ld[0].split()[0]} -> {ld[1].split()[0]}" if ld else "n/a")
        add("| *other CPUs (worst engine)* | " + " | ".join(others) + " |")
        add("| *load average before -> after* | " + " | ".join(loads) + " |")
        add("")
        add(f"Speed ratios, {t} thread{'s' if t > 1 else ''} (peer time / octet time, median over rounds; > 1: octet faster)")
        add("")
        octets = [o for o in ("octet-int8", "octet-f32") if o in engines]
        pairs = [(o, p) for o in octets for p in engines if not p.startswith("octet")]
        pairs += [("octet-int8", o) for o in engines if o.startswith("octet") and o != "octet-int8"]
        add("| octet vs peer | " + " | ".join(cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for o, p in pairs:
            cells = []
            for c in cols:
                key = f"{t}/{c}"
                times = res["times"].get(key, {})
                cells.append(mark(f"{speed_ratio(times, o, p):.2f}x", point_quiet(res, key, [o, p]))
                             if times.get(o) and times.get(p) else "n/a")
            add(f"| {o} vs {p} | " + " | ".join(cells) + " |")
        cells = []
        for c in cols:
            key = f"{t}/{c}"
            times = res["times"].get(key, {})
            v, who = vs_fastest(times, "octet-int8", is_int8_peer)
            quiet = point_quiet(res, key, ["octet-int8"] + [n for n in times if is_int8_peer(n)])
            cells.append(mark(f"{v:.2f}x ({who})", quiet) if v is not None else "n/a")
        add("| octet-int8 vs the fastest peer int8 (per round) | " + " | ".join(cells) + " |")
        add("")
    add(targets(res))
    prompt = MODELS[res["model"]]["prompt"]
    add(f"### Quality on the corpus (cosine vs fp32 sentence-transformers, {res['quality_texts']} sentences"
        + (f", prompt `{prompt}` prepended for every engine)" if prompt else ")"))
    add("")
    add("| engine | mean cosine | min cosine | file MB |")
    add("|---|---:|---:|---:|")
    for e in engines:
        q = res["quality"].get(e)
        size = res["file_bytes"].get(e)
        size_text = f"{size / 1e6:.1f}" if size else "n/a"
        add(f"| {e} | {q[0]:.5f} | {q[1]:.5f} | {size_text} |" if q else f"| {e} | n/a | n/a | {size_text} |")
    add("")
    add("### Cold start and memory")
    add("")
    busy = {k for k, v in res.get("cold_other", {}).items() if not v <= OTHER_CPU_LIMIT}
    for k, v in res["cold"].items():
        add(f"- {k}: {mark(f'{v:.1f} ms', k not in busy)}")
    for k, v in res["rss"].items():
        add(f"- {k}: {'(other CPUs busy) ' if k in busy else ''}peak RSS {v['peak_rss_bytes'] / 1e6:.1f} MB for a {v['file_bytes'] / 1e6:.1f} MB file "
            f"(RSS - file = {(v['peak_rss_bytes'] - v['file_bytes']) / 1e6:.1f} MB), corpus {v['texts_per_s']:.0f} texts/s")
    add("")
    for n in res["notes"]:
        add(f"Note: {n}")
    out_md.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def plot(res, folder=PLOTS):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    title = MODELS[res["model"]]["title"]
    singles = [p for p in res["points"] if p.startswith("1x")]
    lengths = [int(p.split("x")[1]) for p in singles]
    batched = [p for p in res["points"] if not p.startswith("1x")]
    wide = "corpus" if res["corpus"] else (batched or res["points"])[-1]
    written = []
    for t in res["threads"]:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for e in res["engines"]:
            ys = [med(res["times"].get(f"{t}/{p}", {}).get(e, [])) for p in singles]
            style = "-" if e.startswith("octet") else "--"
            left.plot(lengths, ys, style, marker="o", label=e)
        left.set_xlabel("tokens (batch 1)")
        left.set_ylabel("ms per call (log)")
        left.set_yscale("log")
        left.set_title(f"{title} latency vs sequence length, {t} thread(s)", fontsize=9)
        left.grid(True, alpha=0.3)
        left.legend(fontsize=7)
        names = res["engines"]
        n_texts = res["corpus_size"] if wide == "corpus" else int(wide.split("x")[0])
        tput = [n_texts / (med(res["times"].get(f"{t}/{wide}", {}).get(e, [])) / 1e3) for e in names]
        colors = ["tab:blue" if e.startswith("octet") else "tab:gray" for e in names]
        right.barh(names, tput, color=colors)
        right.set_xlabel(f"texts/s at {wide} (higher is better)")
        right.set_title("throughput")
        right.invert_yaxis()
        right.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        path = folder / f"{res['model']}-t{t}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
