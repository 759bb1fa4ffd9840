"""`genlab report`: one self-contained HTML page (and its Markdown twin) about one or more runs.

For each run: its settings, every curve it logged (plotted from its own scalars.jsonl), GAN
equilibrium diagnostics, the image grids of its last checkpoint, an interpolation grid, any
figures in RUN/figures, and every score stored beside its checkpoints with the protocol. Then a
comparison table and the runs' samples side by side. The HTML embeds every image as a data: URI,
so the page is one file with no network reference; the Markdown twin links the same PNGs, written
beside it.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from genlab.config import RunConfig
from genlab.errors import GenlabError
from genlab.fsutil import atomic_write_bytes
from genlab.metrics.records import read_records
from genlab.metrics.registry import format_value, metrics_of, shown_values, values_of
from genlab.metrics.stats import over_seeds_text
from genlab.run import load_run, open_config
from genlab.checkpoint import list_checkpoints
from genlab.train.logging import read_scalars
from genlab.models import walks
from genlab.viz import plots
from genlab.grid import save_grid

GRIDS = ("val", "reconstructions", "samples")
NUM_FIXED_SAMPLES = 32  # the trainer's fixed-latent grid (genlab.train.trainer)


@dataclass
class RunSection:
    name: str
    folder: Path
    config: RunConfig
    step: int | None
    settings: dict[str, str]
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG in the output)
    fid: list[dict] = field(default_factory=list)
    latent: list[dict] = field(default_factory=list)
    equilibrium: dict = field(default_factory=dict)


def _settings(config: RunConfig) -> dict[str, str]:
    model = asdict(config.model_config)
    out = {"model": config.model + (f" ({model['arch']})" if "arch" in model else ""),
           "dataset": f"{config.data.dataset} (train: {config.data.train_split}, "
                      f"val: {config.data.val_split})",
           "image shape": " x ".join(map(str, config.image_shape)),
           "latent_dim": str(model.get("latent_dim", "")),
           "batch_size": str(config.train.batch_size),
           "num_training_steps": str(config.train.num_training_steps),
           "learning rate": f"{config.train.learning_rate:g}",
           "generator loss": str(model.get("generator_loss", "none (no GAN term)")),
           "seed": str(config.train.seed),
           "genlab version": config.genlab_version}
    for name, value in model.items():
        if name not in ("arch", "latent_dim", "generator_loss"):
            out[name.replace("_", " ")] = str(value)
    return out


def _scores(folder: Path) -> tuple[list[dict], list[dict]]:
    """The run's records: sample quality (metrics of Inception features) and those of metrics
    that run the generator (latent paths), as genlab.metrics.registry sorts them."""
    quality, latent = [], []
    for _, checkpoint in list_checkpoints(folder):
        for record in read_records(checkpoint):
            if metrics_of(record):
                quality.append(record)
            elif metrics_of(record, needs="generator"):
                latent.append(record)
    return quality, latent


def _values_text(record: dict) -> str:
    return ", ".join(f"{k} {format_value(k, v)}" for k, v in shown_values(record).items())


def _section(folder: Path, name: str, out: Path, interpolation: bool,
             log: Callable[[str], None]) -> RunSection:
    config = open_config(folder)
    checkpoints = list_checkpoints(folder)
    step = checkpoints[-1][0] if checkpoints else None
    section = RunSection(name, folder, config, step, _settings(config))
    section.fid, section.latent = _scores(folder)
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    records = read_scalars(folder)
    title = f"{name}: {config.model} on {config.data.dataset}"
    if plots.curves(records, target / "curves.png", title):
        section.images.append(("every logged curve (train: mean over each logging window; val: "
                               "whole validation split at each checkpoint)", target / "curves.png"))
    samples = [(s, p.with_name(f"{p.stem}-samples.png")) for s, p in checkpoints
               if p.with_name(f"{p.stem}-samples.png").is_file()]
    if any("train/D(x)" in r for r in records):  # a GAN's logs
        extractor = _inception(log)
        diversity = plots.sample_diversity(samples, config.image_shape[1], NUM_FIXED_SAMPLES,
                                           features=extractor)
        unit = ("mean pairwise Inception-feature distance" if extractor else
                "mean pairwise RMS pixel distance")
        if plots.equilibrium_plot(records, diversity, target / "equilibrium.png", title, unit):
            section.images.append(("GAN equilibrium: D's outputs against 1/2, the ratio of the "
                                   f"two losses, and the diversity of the fixed-latent samples "
                                   f"({unit})", target / "equilibrium.png"))
            section.equilibrium = {**plots.equilibrium(records, diversity),
                                   "diversity measured as": unit}
    if step is not None:
        stem = checkpoints[-1][1].stem
        for grid in GRIDS:
            png = folder / "checkpoints" / f"{stem}-{grid}.png"
            if png.is_file():
                shutil.copyfile(png, target / f"{grid}.png")
                section.images.append((f"{grid} at step {step}", target / f"{grid}.png"))
        if interpolation:
            log(f"report: interpolating in {folder}")
            model = load_run(folder, torch.device("cpu"), log).model
            ends = walks.prior_endpoints(model, 4, torch.Generator().manual_seed(0))
            grid, frames = walks.decode_walks(model, ends, steps=8, extend=2)  # 4 paths, 13 frames
            save_grid(grid, target / "interpolation.png", nrow=frames)
            section.images.append((f"interpolation between prior draws at step {step}: 4 paths, "
                                   "i/8 for i = -2..10 (first and last two columns extrapolate)",
                                   target / "interpolation.png"))
    for png in sorted((folder / "figures").glob("*.png")):
        shutil.copyfile(png, target / png.name)
        section.images.append((png.stem.replace("-", " "), target / png.name))
    return section


_EXTRACTOR: list = []


def _inception(log: Callable[[str], None]):
    """FID's Inception features (fp32, CPU), loaded once; None (pixel distances) without them."""
    if not _EXTRACTOR:
        from genlab.metrics.inception import InceptionFeatures

        try:
            _EXTRACTOR.append(InceptionFeatures(device="cpu"))
        except GenlabError as exc:
            log(f"report: sample diversity in pixel space ({exc})")
            _EXTRACTOR.append(None)
    return _EXTRACTOR[0]


def _protocol(record: dict) -> str:
    """A sample-quality record's protocol and Inception precision, as its settings state them."""
    settings = record.get("settings", {})
    return (f"{settings.get('protocol', 'protocol unstated')}; Inception "
            f"{settings.get('precision', 'precision unstated')}")


def _comparison(sections: list[RunSection]) -> tuple[list[str], list[list[str]]]:
    latest = {s.name: max(s.fid, key=lambda r: r["step"]) if s.fid else None for s in sections}
    # One column per value any run's latest record holds, in the registry's order.
    keys = list(dict.fromkeys(k for r in latest.values() if r for k in shown_values(r)))
    latest_paths = {s.name: max(s.latent, key=lambda r: r["step"]) if s.latent else None
                    for s in sections}
    path_keys = list(dict.fromkeys(k for r in latest_paths.values() if r
                                   for k in shown_values(r)))
    header = ["run", "model", "dataset", "latent", "steps", "scored step", *keys, "protocol",
              *path_keys]
    rows = []
    for s in sections:
        score = latest[s.name]
        values = values_of(score) if score else {}
        paths = values_of(latest_paths[s.name]) if latest_paths[s.name] else {}
        rows.append([s.name, s.settings["model"], s.config.data.dataset, s.settings["latent_dim"],
                     str(s.step if s.step is not None else "-"),
                     str(score["step"]) if score else "-",
                     *[format_value(k, values[k]) if k in values else "-" for k in keys],
                     _protocol(score) if score else "-",
                     *[format_value(k, paths[k]) if k in paths else "-" for k in path_keys]])
    return header, rows


def _over_seeds(sections: list[RunSection]) -> tuple[list[str], list[list[str]]]:
    """Runs that differ only in their seed, grouped: each latest score's mean +- sample std
    and n; no rows when every setting has one seed."""
    groups: dict[str, list[RunSection]] = {}
    for s in sections:
        setting = s.config.to_dict()
        setting["train"] = {k: v for k, v in setting["train"].items() if k != "seed"}
        groups.setdefault(json.dumps(setting, sort_keys=True), []).append(s)
    keys = list(dict.fromkeys(k for s in sections for r in s.fid[-1:] for k in shown_values(r)))
    header, rows = ["runs", "seeds", *keys], []
    for members in groups.values():
        if len(members) < 2:
            continue
        latest = [max(m.fid, key=lambda r: r["step"]) for m in members if m.fid]
        cells = []
        for key in keys:
            values = [values_of(r)[key] for r in latest if key in values_of(r)]
            cells.append(over_seeds_text(values) if values else "-")
        rows.append([", ".join(m.name for m in members),
                     " ".join(str(m.config.train.seed) for m in members), *cells])
    return header, rows


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _table_md(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def _score_rows(section: RunSection) -> tuple[list[str], list[list[str]]]:
    header = ["step", "metric", "value", "protocol"]
    rows = []
    for r in sorted(section.fid, key=lambda r: r["step"]):
        rows.append([str(r["step"]), ", ".join(metrics_of(r)), _values_text(r),
                     _protocol(r)])
    for r in sorted(section.latent, key=lambda r: r["step"]):
        rows.append([str(r["step"]), ", ".join(metrics_of(r, needs="generator")),
                     _values_text(r), r.get("settings", {}).get("protocol", "unstated")])
    return header, rows


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:left;font-size:14px}th{background:#eee}img{max-width:100%;border:1px solid #ddd}
figure{margin:1em 0}figcaption{font-size:13px;color:#555}.side{display:flex;gap:1em;
flex-wrap:wrap}.side figure{flex:1;min-width:220px}.alert{color:#b00;font-weight:bold}"""


def build_report(runs: list[Path], out: Path, interpolation: bool = True,
                 log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Write OUT/report.html (self-contained) and OUT/report.md (+ its PNGs under OUT)."""
    out.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for folder in runs:
        name = Path(folder).resolve().name
        names.append(name if name not in names else f"{name}-{len(names)}")
    sections = [_section(Path(f), n, out, interpolation, log) for f, n in zip(runs, names)]
    header, rows = _comparison(sections)
    doc_html = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>genlab "
                f"report</title><style>{STYLE}</style></head><body><h1>genlab report</h1>",
                f"<p>{len(sections)} run(s). Curves are plotted from each run's own logs; scores "
                "are those stored beside its checkpoints, with their protocol.</p>",
                "<h2>Comparison</h2>", _table_html(header, rows)]
    doc_md = ["# genlab report", "", f"{len(sections)} run(s). Curves are plotted from each "
              "run's own logs; scores are those stored beside its checkpoints.", "",
              "## Comparison", "", _table_md(header, rows), ""]
    seed_header, seed_rows = _over_seeds(sections)
    if seed_rows:
        doc_html += ["<h3>Over seeds (runs that differ only in --seed)</h3>",
                     _table_html(seed_header, seed_rows)]
        doc_md += ["### Over seeds (runs that differ only in --seed)", "",
                   _table_md(seed_header, seed_rows), ""]
    side = [(s.name, out / s.name / "samples.png") for s in sections
            if (out / s.name / "samples.png").is_file()]
    if side:
        doc_html.append("<h3>Samples side by side (last checkpoint, the same fixed latents per "
                        "run)</h3><div class=\"side\">")
        doc_md += ["### Samples side by side", ""]
        for name, png in side:
            doc_html.append(f"<figure><img src=\"{_data_uri(png)}\" alt=\"samples of "
                            f"{html.escape(name)}\"><figcaption>{html.escape(name)}"
                            "</figcaption></figure>")
            doc_md.append(f"![samples of {name}]({png.relative_to(out).as_posix()})")
        doc_html.append("</div>")
        doc_md.append("")
    for s in sections:
        doc_html.append(f"<h2>{html.escape(s.name)}</h2><p>{html.escape(str(s.folder))}; last "
                        f"checkpoint: step {s.step}</p>")
        doc_md += [f"## {s.name}", "", f"{s.folder}; last checkpoint: step {s.step}", ""]
        settings = [[k, v] for k, v in s.settings.items()]
        doc_html += ["<h3>Settings</h3>", _table_html(["setting", "value"], settings)]
        doc_md += ["### Settings", "", _table_md(["setting", "value"], settings), ""]
        if s.equilibrium:
            eq = s.equilibrium
            rows_eq = [[k.replace("_", " "), f"{v:.3f}" if isinstance(v, float) else str(v)]
                       for k, v in eq.items()]
            doc_html += ["<h3>GAN equilibrium (last 10 logged means)</h3>",
                         _table_html(["diagnostic", "value"], rows_eq)]
            doc_md += ["### GAN equilibrium (last 10 logged means)", "",
                       _table_md(["diagnostic", "value"], rows_eq), ""]
            if eq.get("mode_collapse_alert"):
                warning = ("mode-collapse alert: the fixed-latent samples' diversity fell below "
                           "half its peak")
                doc_html.append(f"<p class=\"alert\">{warning}</p>")
                doc_md += [f"**{warning}**", ""]
        score_header, score_rows = _score_rows(s)
        doc_html.append("<h3>Scores</h3>")
        doc_md += ["### Scores", ""]
        if score_rows:
            doc_html.append(_table_html(score_header, score_rows))
            doc_md += [_table_md(score_header, score_rows), ""]
        else:
            doc_html.append("<p>none stored (run `genlab eval`)</p>")
            doc_md += ["none stored (run `genlab eval`)", ""]
        for caption, png in s.images:
            doc_html.append(f"<figure><img src=\"{_data_uri(png)}\" alt=\"{html.escape(caption)}\">"
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            doc_md += [f"![{caption}]({png.relative_to(out).as_posix()})", "", f"*{caption}*", ""]
    doc_html.append("</body></html>")
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_bytes(html_path, "\n".join(doc_html).encode())
    atomic_write_bytes(md_path, "\n".join(doc_md).encode())
    return html_path, md_path
