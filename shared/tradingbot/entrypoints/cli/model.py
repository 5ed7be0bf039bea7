"""`tradingbot model train|evaluate|export|list|predict`: the LSTM price model.

Mounted on the main CLI with ``app.add_typer(model_app, name="model")``. ``train``, ``evaluate``
and ``export`` need the training extra (TensorFlow, tf2onnx: ``pip install -e '.[training]'``) and
import it only when run, so the rest of the CLI starts fast and works without it; ``list`` and
``predict`` need only onnxruntime. Exit status: 0 done, 2 bad input, 1 environment (no training
extra, database unreachable, parity check failed).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

# stdlib only: its DEFAULT_NAME is an option default, so it loads with `--help`
from tradingbot.adapters.model.artifact import DEFAULT_NAME, ArtifactError, list_local, load_artifact, new_version
from tradingbot.entrypoints.cli.console import lazy_console

# numpy, pandas (candles) and rich load inside the commands, so `tradingbot --help` does not pay for them

model_app = typer.Typer(no_args_is_help=True, add_completion=False, help="LSTM price model: train, evaluate, export.")

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)

DataOpt = Annotated[
    Path | None, typer.Option("--data", help="candles (.csv/.csv.gz/.parquet); default: bundled BTCUSDT 1h")
]
BarsOpt = Annotated[int | None, typer.Option("--bars", help="use only the last N bars")]
EpochsOpt = Annotated[int, typer.Option(help="maximum epochs (early stopping may end sooner)")]
PatienceOpt = Annotated[int, typer.Option(help="early stopping: epochs without a better validation loss")]
UnitsOpt = Annotated[str, typer.Option("--lstm-units", help="LSTM layer sizes, comma separated")]
SymbolsOpt = Annotated[
    str | None,
    typer.Option(
        "--symbols",
        help="the symbol family the candles are of, comma separated TradingView tickers (BTCUSDT); default: "
        "from the data file's name ({SYMBOL}-{tf}.*, as `data download` writes it; the bundled file is BTCUSDT)",
    ),
]
DEFAULT_ARTIFACTS = Path("out/models")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _training(module: str) -> Any:
    """``tradingbot_training.<module>``, or a clear message when the training extra is not installed.

    Imported by name: mypy checks shared/ only, and TensorFlow must not load before a command needs it."""
    missing = [m for m in ("tensorflow", "tf2onnx", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(
            f"{', '.join(missing)} not installed: this command needs the training extra "
            "(pip install -e '.[training]'); inference (model list / predict) does not",
            1,
        )
    if importlib.util.find_spec("tradingbot_training") is None:
        # a source checkout: training/ sits beside shared/ (an installed wheel ships it as a package)
        checkout = Path(__file__).resolve().parents[4] / "training"
        if (checkout / "tradingbot_training").is_dir():
            sys.path.insert(0, str(checkout))
        else:
            _fail("the tradingbot_training package is not installed (pip install -e '.[training]')", 1)
    return importlib.import_module(f"tradingbot_training.{module}")


def _candles(data: Path | None, bars: int | None) -> Any:
    from tradingbot.domain.candles import CandleDataError, bundled_path, load_candles

    try:
        frame = load_candles(data or bundled_path())
    except CandleDataError as exc:
        _fail(str(exc))
    return frame.iloc[-bars:] if bars else frame


def _symbols(symbols: str | None, data: Path | None, training: Any) -> tuple[str, ...]:
    """The family written into the artifact (Predict runs the model on no other symbol)."""
    from tradingbot.domain.candles import bundled_path

    try:
        if symbols is not None:
            family: tuple[str, ...] = training.symbol_family(symbols.split(","))
        else:
            family = training.symbols_from_path(data or bundled_path())
    except ValueError as exc:
        _fail(f"--{exc}")
    if not family:
        _fail(f"--symbols: name the symbol family the candles in {data} are of (e.g. --symbols ETHUSDT)")
    return family


def _train_config(
    epochs: int, lstm_units: str, dropout: float, dense: int, batch_size: int, seed: int, patience: int
) -> Any:
    TrainConfig = _training("train").TrainConfig
    try:
        units = tuple(int(u) for u in lstm_units.split(",") if u.strip())
        return TrainConfig(
            lstm_units=units,
            dropout=dropout,
            dense_units=dense,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            patience=patience,
        )
    except ValueError as exc:
        _fail(f"bad training option: {exc}")


def _epoch_progress(label: str) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[logs]}"), console=err,
    )  # fmt: skip
    task = progress.add_task(label, total=1, logs="")

    def on_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        text = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
        progress.update(task, completed=epoch, total=epochs, logs=text)
        if not sys.stderr.isatty():  # CI logs: one line per epoch instead of redraws
            err.print(f"{label} epoch {epoch}/{epochs} {text}")

    return progress, on_epoch


def _register(metadata: Any, uri: str) -> None:
    from tradingbot.adapters.model.registry import register_version
    from tradingbot.adapters.persistence.config import read_state
    from tradingbot.adapters.persistence.db import check_connection, get_engine, session_scope
    from tradingbot.adapters.persistence.errors import DatabaseUnavailable
    from tradingbot.settings import Settings

    settings = Settings().persistence  # this command's own read
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        state = read_state(settings.data_dir)
        if state is None:
            _fail("--register needs a database: set DATABASE_URL or run `tradingbot servers up`", 1)
        url = state.database_url
    try:
        engine = get_engine(url, connect_timeout_s=settings.db_connect_timeout_s)
        check_connection(engine)
        with session_scope(engine) as session:
            _, created = register_version(session, metadata, uri)
    except DatabaseUnavailable as exc:
        _fail(str(exc), 1)
    out.print(
        f"registered {metadata.name}:{metadata.version} in model_versions" + ("" if created else " (already there)")
    )


def _export(
    trained: Any, out_dir: Path, name: str, version: str | None, register: bool, metrics: dict[str, Any] | None = None
) -> None:
    exporting = _training("export")
    ParityError, export_trained = exporting.ParityError, exporting.export_trained

    try:
        result = export_trained(trained, out_dir, name=name, version=version, metrics=metrics)
    except ParityError as exc:
        _fail(str(exc), 1)
    except ArtifactError as exc:
        _fail(str(exc))
    meta = result.metadata
    size = (result.directory / "model.onnx").stat().st_size
    out.print(
        f"exported {meta.name}:{meta.version} to {result.directory} ({size / 1024:.0f} KiB, "
        f"sha256 {meta.sha256[:12]}); "
        f"ONNX vs Keras max abs diff {result.max_abs_diff:.2e} on {result.parity_windows} held-out windows"
    )
    if register:
        _register(meta, str(result.directory.resolve()))


@model_app.command()
def train(
    data: DataOpt = None,
    bars: BarsOpt = None,
    epochs: EpochsOpt = 30,
    lstm_units: UnitsOpt = "100,100,50",
    dropout: Annotated[float, typer.Option(help="dropout after each LSTM layer")] = 0.2,
    dense: Annotated[int, typer.Option(help="units of the relu Dense layer (0: none)")] = 25,
    batch_size: Annotated[int, typer.Option()] = 64,
    seed: Annotated[int, typer.Option()] = 42,
    patience: PatienceOpt = 5,
    name: Annotated[str, typer.Option(help="model name in the registry")] = DEFAULT_NAME,
    version: Annotated[str | None, typer.Option(help="default: v<UTC timestamp>")] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="artifacts folder; the model lands in <out>/<version>")
    ] = DEFAULT_ARTIFACTS,
    checkpoint_dir: Annotated[Path, typer.Option(help="Keras checkpoints, for `model export`")] = Path("out/training"),
    register: Annotated[bool, typer.Option("--register", help="record the version in model_versions")] = False,
    metrics_from: Annotated[
        Path | None, typer.Option(help="a `model evaluate` JSON whose walk-forward summary goes into the metadata")
    ] = None,
    symbols: SymbolsOpt = None,
) -> None:
    """Train the LSTM (progress per epoch), then export it to ONNX with the parity check. The artifact
    names the bar interval and the symbol family it was trained on; Predict runs it on nothing else."""
    from tradingbot.domain.candles import bundled_path
    from tradingbot.domain.features import FeatureError

    training = _training("train")
    save_checkpoint, train_model = training.save_checkpoint, training.train_model

    cfg = _train_config(epochs, lstm_units, dropout, dense, batch_size, seed, patience)
    family = _symbols(symbols, data, training)
    candles = _candles(data, bars)
    version = version or new_version()
    progress, on_epoch = _epoch_progress("training")
    try:
        with progress:
            trained = train_model(candles, cfg, progress=on_epoch, symbols=family)
    except FeatureError as exc:
        _fail(str(exc))
    ckpt = save_checkpoint(trained, checkpoint_dir / version, str((data or bundled_path()).resolve()))
    best = min(trained.history["val_loss"])
    out.print(f"trained {len(trained.history['loss'])} epoch(s), best validation loss {best:.4f}; checkpoint {ckpt}")
    _export(trained, out_dir, name, version, register, _metrics(trained, metrics_from))


def _metrics(trained: Any, report: Path | None) -> dict[str, Any]:
    """The model's own validation-tail figures (early stopping saw them: not out of sample) and, when
    given, the walk-forward report's out-of-sample summary."""
    import numpy as np

    ends = trained.val_ends
    pred, actual = trained.predict_returns(ends), trained.targets[ends]
    mask = actual != 0
    metrics: dict[str, Any] = {
        "validation_direction_accuracy": float(np.mean((pred[mask] > 0) == (actual[mask] > 0))),
        "validation_rmse": float(((pred - actual) ** 2).mean() ** 0.5),
        "validation_note": "validation tail used for early stopping; see walk_forward_* for out-of-sample figures",
    }
    if report is not None:
        try:
            data = json.loads(report.read_text())
            d = data["model"]["direction"]
            metrics |= {
                "walk_forward_accuracy": d["accuracy"],
                "walk_forward_accuracy_ci95": d["ci95"],
                "walk_forward_windows": d["n"],
                "walk_forward_rmse": data["model"]["rmse"],
                "walk_forward_zero_return_rmse": data["baselines"]["zero_return"]["rmse"],
                "walk_forward_beats_baselines": data["verdict"]["beats_baselines"],
                "walk_forward_report": report.name,
            }
        except (OSError, ValueError, KeyError) as exc:
            _fail(f"{report}: not a `model evaluate` JSON report: {exc}")
    return metrics


@model_app.command()
def export(
    checkpoint: Annotated[Path, typer.Option(help="a folder written by `model train` (model.keras + training.json)")],
    name: Annotated[str, typer.Option()] = DEFAULT_NAME,
    version: Annotated[str | None, typer.Option(help="default: v<UTC timestamp>")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="artifacts folder")] = DEFAULT_ARTIFACTS,
    register: Annotated[bool, typer.Option("--register", help="record the version in model_versions")] = False,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="the symbol family, for a checkpoint that does not name it")
    ] = None,
) -> None:
    """Convert a Keras checkpoint to ONNX; writes nothing unless ONNX and Keras agree (< 1e-4)."""
    import dataclasses

    from tradingbot.domain.candles import CandleDataError
    from tradingbot.domain.features import FeatureError

    training = _training("train")
    load_checkpoint = training.load_checkpoint

    if not (checkpoint / "training.json").is_file():
        _fail(f"{checkpoint}: not a training checkpoint (no training.json)")
    try:
        trained = load_checkpoint(checkpoint)
    except (FeatureError, CandleDataError) as exc:
        _fail(str(exc))
    if symbols is not None:
        try:
            trained = dataclasses.replace(trained, symbols=training.symbol_family(symbols.split(",")))
        except ValueError as exc:
            _fail(f"--{exc}")
    _export(trained, out_dir, name, version, register)


@model_app.command()
def evaluate(
    data: DataOpt = None,
    bars: BarsOpt = None,
    folds: Annotated[int, typer.Option(help="walk-forward test blocks")] = 4,
    initial_train_fraction: Annotated[float, typer.Option(help="share of windows never scored")] = 0.5,
    epochs: EpochsOpt = 30,
    lstm_units: UnitsOpt = "100,100,50",
    dropout: Annotated[float, typer.Option()] = 0.2,
    dense: Annotated[int, typer.Option()] = 25,
    batch_size: Annotated[int, typer.Option()] = 64,
    seed: Annotated[int, typer.Option()] = 42,
    patience: PatienceOpt = 5,
    fee: Annotated[float, typer.Option(help="taker fee per side for the backtest")] = 0.0004,
    report: Annotated[Path, typer.Option(help="markdown report; the JSON goes beside it")] = Path(
        "out/model-evaluation.md"
    ),
) -> None:
    """Walk-forward out-of-sample evaluation beside naive baselines, with a fee-paying backtest."""
    from tradingbot.domain.features import FeatureError

    evaluating = _training("evaluate")
    EvalConfig, render_markdown, walk_forward = (
        evaluating.EvalConfig,
        evaluating.render_markdown,
        evaluating.walk_forward,
    )

    if folds < 1 or not 0.1 <= initial_train_fraction <= 0.9:
        _fail("--folds must be >= 1 and --initial-train-fraction in [0.1, 0.9]")
    cfg = EvalConfig(
        folds,
        initial_train_fraction,
        fee,
        _train_config(epochs, lstm_units, dropout, dense, batch_size, seed, patience),
    )
    candles = _candles(data, bars)
    progress, on_epoch = _epoch_progress("fold 1")

    def on_fold(i: int, n: int, fold: dict[str, Any]) -> None:
        err.print(
            f"fold {i}/{n}: {fold['test_windows']} windows scored, accuracy {100 * fold['accuracy']:.2f} %, "
            f"RMSE {fold['rmse']:.6f}"
        )
        if i < n:
            progress.update(progress.task_ids[0], description=f"fold {i + 1}", completed=0)

    try:
        with progress:
            result = walk_forward(candles, cfg, on_fold=on_fold, progress=on_epoch)
    except FeatureError as exc:
        _fail(str(exc))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render_markdown(result))
    report.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    v, d = result["verdict"], result["model"]["direction"]
    out.print(
        f"directional accuracy {100 * d['accuracy']:.2f} % (95 % CI {100 * d['ci95'][0]:.2f} - "
        f"{100 * d['ci95'][1]:.2f}) "
        f"on {d['n']} bars; beats baselines: {'yes' if v['beats_baselines'] else 'no'}"
    )
    out.print(f"report: {report} and {report.with_suffix('.json')}")


@model_app.command("list")
def list_(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="artifacts folder; default: the bundled models")
    ] = None,
    db: Annotated[bool, typer.Option("--db", help="list the model_versions registry instead")] = False,
) -> None:
    """Model versions: local artifact folders (default) or the database registry."""
    from rich.table import Table

    if db:
        _list_db()
        return
    metas = list_local(directory)
    if not metas:
        out.print(f"no model artifacts under {directory or 'the package'}")
        return
    table = Table(
        "name", "version", "created", "features", "window", "trained through", "accuracy (walk-forward)", "sha256"
    )
    for m in metas:
        acc = m.metrics.get("walk_forward_accuracy")
        table.add_row(
            m.name, m.version, m.created_at, str(len(m.features)), str(m.window),
            str(m.training_span.get("fit_last_target_bar", "?")),
            f"{100 * acc:.2f} %" if isinstance(acc, float) else "-", m.sha256[:12],
        )  # fmt: skip
    out.print(table)


def _list_db() -> None:
    from rich.table import Table

    from tradingbot.adapters.model.registry import list_versions
    from tradingbot.adapters.persistence.config import read_state
    from tradingbot.adapters.persistence.db import check_connection, get_engine, session_scope
    from tradingbot.adapters.persistence.errors import DatabaseUnavailable
    from tradingbot.settings import Settings

    settings = Settings().persistence  # this command's own read
    url = settings.database_url.get_secret_value() if settings.database_url else None
    if url is None:
        state = read_state(settings.data_dir)
        if state is None:
            _fail("no database: set DATABASE_URL or run `tradingbot servers up`", 1)
        url = state.database_url
    try:
        engine = get_engine(url, connect_timeout_s=settings.db_connect_timeout_s)
        check_connection(engine)
        with session_scope(engine) as session:
            rows = [
                (r.name, r.version, r.is_active, r.created_at, r.artifact_uri, r.sha256) for r in list_versions(session)
            ]
    except DatabaseUnavailable as exc:
        _fail(str(exc), 1)
    if not rows:
        out.print("no model versions registered (tradingbot model export --register)")
        return
    table = Table("name", "version", "active", "registered", "artifact", "sha256")
    for name, version, active, created, uri, sha in rows:
        table.add_row(name, version, "yes" if active else "", created.strftime("%Y-%m-%d %H:%M"), uri, sha[:12])
    out.print(table)


@model_app.command()
def predict(
    data: DataOpt = None,
    bars: Annotated[int, typer.Option("--bars", help="candles handed to the model (the pipeline's default)")] = 500,
    uri: Annotated[
        str | None,
        typer.Option("--uri", help="artifact folder or s3:// URI; default: MODEL_ARTIFACT_URI or the bundled model"),
    ] = None,
) -> None:
    """Predict the next bar's return from the last candles with ONNX Runtime (no TensorFlow)."""
    from tradingbot.adapters.model.predictor import Predictor, load_default_predictor
    from tradingbot.domain.features import FeatureError

    candles = _candles(data, bars)
    try:
        predictor = Predictor(load_artifact(uri)) if uri else load_default_predictor()
        if predictor is None:
            _fail("no model: MODEL_ARTIFACT_URI is 'none' and nothing is bundled", 1)
        result = predictor.predict(candles)
    except (ArtifactError, FeatureError) as exc:
        _fail(str(exc))
    out.print(json.dumps(result.to_dict()))
