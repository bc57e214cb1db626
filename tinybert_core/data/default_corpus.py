"""The embedded default corpus: English text from the Python standard library's docstrings.

So that ``tinybert pretrain`` runs on any machine with Python and nothing to download, the
default corpus is written from the docstrings of a fixed, sorted list of standard-library
modules present on Python 3.10-3.13 (a module that fails to import is skipped). One document per
module (its docstring, then its functions') and per class (its docstring, then its methods'),
one sentence per line, in the same order each time: the text depends only on the Python
version. Doctest and code lines, reST markup and paragraphs with too few letters are dropped;
a paragraph already seen is not repeated. Every 10th document goes to the validation split.

``default_vocab_path`` trains a WordPiece vocabulary on the training split once
(``wordpiece_trainer``) and caches it beside the corpus.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import platform
import re
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from autograd.serialization import atomic_write_text
from tinybert_core.data.corpus import PathLike, default_cache_dir
from tinybert_core.text.wordpiece_trainer import TRAINER_VERSION, save_vocab, train_wordpiece_vocab

BUILDER_VERSION = 1
DEFAULT_VOCAB_SIZE = 8000
VALID_EVERY = 10  # the validation split is small otherwise (~20 KB at 20)

# Sorted; mostly pure Python, all present from 3.10 to 3.13. Nothing that opens a window, a
# browser or a network connection on import, and no module removed by PEP 594.
DEFAULT_MODULES: tuple[str, ...] = (
    "_pydecimal", "abc", "argparse", "ast", "asyncio.base_events", "asyncio.events",
    "asyncio.futures", "asyncio.locks", "asyncio.protocols", "asyncio.queues", "asyncio.runners",
    "asyncio.streams", "asyncio.subprocess", "asyncio.tasks", "asyncio.transports", "base64",
    "bdb", "bisect", "calendar", "cmd", "code", "codecs", "codeop", "collections",
    "collections.abc", "colorsys", "compileall", "concurrent.futures._base",
    "concurrent.futures.process", "concurrent.futures.thread", "configparser", "contextlib",
    "copy", "copyreg", "csv", "dataclasses", "datetime", "difflib", "dis", "doctest",
    "email.charset", "email.generator", "email.header", "email.headerregistry", "email.message",
    "email.parser", "email.policy", "email.utils", "enum", "filecmp", "fileinput", "fnmatch",
    "fractions", "ftplib", "functools", "getopt", "getpass", "gettext", "glob", "graphlib", "gzip",
    "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookiejar", "http.cookies",
    "http.server", "imaplib", "importlib.abc", "importlib.metadata", "importlib.util", "inspect",
    "ipaddress", "itertools", "json", "json.decoder", "json.encoder", "keyword", "linecache",
    "locale", "logging", "logging.config", "logging.handlers", "mailbox", "mimetypes",
    "modulefinder", "multiprocessing.connection", "multiprocessing.managers",
    "multiprocessing.pool", "multiprocessing.queues", "netrc", "numbers", "operator", "optparse",
    "os", "pathlib", "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib",
    "posixpath", "pprint", "profile", "pstats", "py_compile", "pyclbr", "pydoc", "queue", "quopri",
    "random", "re", "reprlib", "runpy", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "smtplib", "socket", "socketserver", "stat", "statistics", "string", "struct",
    "subprocess", "symtable", "sysconfig", "tabnanny", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "trace", "traceback", "types", "typing", "unittest.case",
    "unittest.loader", "unittest.mock", "unittest.result", "unittest.runner", "unittest.suite",
    "urllib.error", "urllib.parse", "urllib.request", "urllib.robotparser", "uuid", "warnings",
    "weakref", "wsgiref.handlers", "wsgiref.simple_server", "wsgiref.util", "wsgiref.validate",
    "xml.dom.minidom", "xml.dom.pulldom", "xml.etree.ElementTree", "xml.sax.handler",
    "xml.sax.saxutils", "xml.sax.xmlreader", "xmlrpc.client", "xmlrpc.server", "zipapp", "zipfile",
    "zipimport",
)

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]*)`")  # :func:`x`, :py:class:`~a.B` -> x, a.B
_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\"'][.!?])\s+(?=[A-Z])")
_CODE_START = (">>>", "...", "$ ", "%", "#", "@")


class DefaultCorpus(NamedTuple):
    train: Path
    valid: Path
    documents: int  # both splits
    lines: int
    bytes: int
    modules: tuple[str, ...]  # those that imported


def _letters_ratio(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def _paragraph_lines(doc: str | None) -> list[str]:
    """The prose sentences of one docstring (see the module docstring for the rules)."""
    if not isinstance(doc, str) or not doc.strip():
        return []
    out: list[str] = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        kept = []
        for line in para.splitlines():
            if line[:1].isspace() or line.lstrip().startswith(_CODE_START):
                break  # an indented block, a doctest or a shell line: code from here on
            kept.append(line)
        text = " ".join(" ".join(kept).split())
        text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), _ROLE.sub(r"\1", text))
        text = re.sub(r"::$", ":", text)
        if len(text) < 20 or len(text.split()) < 4 or _letters_ratio(text) < 0.75:
            continue
        out += [s for s in _SENTENCE_END.split(text) if len(s.split()) >= 2]
    return out


def _members(owner: object, module_name: str) -> Iterator[tuple[str, object]]:
    """Public members defined in ``module_name``, sorted by name."""
    for name, obj in sorted(vars(owner).items()):
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        if isinstance(obj, (classmethod, staticmethod)):
            obj = obj.__func__
        if getattr(obj, "__module__", module_name) == module_name:
            yield name, obj


def iter_default_documents(modules: Iterable[str] = DEFAULT_MODULES
                           ) -> Iterator[tuple[str, str, list[str]]]:
    """(module, source name, lines) for each document of the default corpus, in a fixed
    order."""
    seen: set[str] = set()

    def fresh(lines: list[str]) -> list[str]:
        new = [s for s in lines if s not in seen]
        seen.update(new)
        return new

    for name in sorted(modules):
        with warnings.catch_warnings():  # deprecated modules and aliases (typing.io) warn
            warnings.simplefilter("ignore")
            docs = list(_module_documents(name, fresh))
        yield from docs


def _module_documents(name: str, fresh: Callable[[list[str]], list[str]]
                      ) -> Iterator[tuple[str, str, list[str]]]:
    try:
        module = importlib.import_module(name)
    except ImportError:  # absent on this build (e.g. no _ssl): skip, as documented
        return
    doc = fresh(_paragraph_lines(module.__doc__))
    classes = []
    for _, obj in _members(module, module.__name__):
        if inspect.isclass(obj):
            classes.append(obj)
        elif callable(obj):
            doc += fresh(_paragraph_lines(getattr(obj, "__doc__", None)))
    if doc:
        yield name, name, doc
    for cls in classes:
        doc = fresh(_paragraph_lines(cls.__doc__))
        for _, member in _members(cls, module.__name__):
            if isinstance(member, property) or callable(member):
                doc += fresh(_paragraph_lines(getattr(member, "__doc__", None)))
        if doc:
            yield name, f"{name}.{cls.__name__}", doc


def build_default_corpus(cache_dir: PathLike | None = None,
                         modules: Sequence[str] = DEFAULT_MODULES,
                         valid_every: int = VALID_EVERY) -> DefaultCorpus:
    """Write (once) and return the default corpus: ``train.txt`` and ``valid.txt`` in
    ``cache_dir/default-corpus/<key>``, the key naming the Python version and the module list.

    Documents are separated by blank lines; document ``i`` goes to the validation split when
    ``i % valid_every == valid_every // 2``.
    """
    if isinstance(valid_every, bool) or not isinstance(valid_every, int) or valid_every < 2:
        raise ValueError(f"build_default_corpus: valid_every must be an int >= 2, "
                         f"got {valid_every!r}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    meta = {"builder": BUILDER_VERSION, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "modules": sorted(modules),
            "valid_every": valid_every}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    d = root / "default-corpus" / key
    manifest = d / "manifest.json"
    if manifest.is_file() and (d / "train.txt").is_file() and (d / "valid.txt").is_file():
        info = json.loads(manifest.read_text(encoding="utf-8"))
        return DefaultCorpus(d / "train.txt", d / "valid.txt", info["documents"],
                             info["lines"], info["bytes"], tuple(info["imported"]))
    splits: tuple[list[str], list[str]] = ([], [])
    imported: set[str] = set()
    n_docs = n_lines = 0
    for i, (module, _, lines) in enumerate(iter_default_documents(modules)):
        imported.add(module)
        splits[i % valid_every == valid_every // 2].append("\n".join(lines) + "\n")
        n_docs, n_lines = n_docs + 1, n_lines + len(lines)
    if len(splits[0]) < 2 or not splits[1]:
        raise ValueError(f"build_default_corpus: modules {list(modules)} gave only {n_docs} "
                         f"documents; the two splits need at least 3")
    d.mkdir(parents=True, exist_ok=True)
    texts = ["\n".join(s) for s in splits]
    atomic_write_text(d / "train.txt", texts[0])
    atomic_write_text(d / "valid.txt", texts[1])
    size = sum(len(t.encode("utf-8")) for t in texts)
    mods = sorted(imported)
    atomic_write_text(manifest, json.dumps({**meta, "documents": n_docs, "lines": n_lines,
                                            "bytes": size, "imported": mods}, indent=1) + "\n")
    return DefaultCorpus(d / "train.txt", d / "valid.txt", n_docs, n_lines, size, tuple(mods))


def default_vocab_path(cache_dir: PathLike | None = None,
                       vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """A WordPiece vocabulary trained on the default corpus's training split, trained on first
    use and cached (``vocab-<size>-v<trainer version>.txt`` beside the corpus)."""
    corpus = build_default_corpus(cache_dir)
    path = corpus.train.parent / f"vocab-{vocab_size}-v{TRAINER_VERSION}.txt"
    if not path.is_file():
        tokens = train_wordpiece_vocab(corpus.train, vocab_size=vocab_size)
        save_vocab(tokens, path)
    return path
