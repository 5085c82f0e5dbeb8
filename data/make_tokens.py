"""Build the course's token file: data/corpus.txt -> data/tokens.bin + data/tokens.sha256.

    python data/make_tokens.py          # (re)write the two files
    python data/make_tokens.py --check  # verify the committed files, write nothing

The tokenizer is the simplest one there is: each byte of the UTF-8 text is one token (a
vocabulary of 256). Tokens are stored as little-endian uint16, the format real tokenizers with
vocabularies of up to 65,536 entries use, so the loader works unchanged on a BPE token file.

Why this source: corpus.txt is plain text written for the course and committed next to this
script, so the output depends on nothing installed (a package's docstrings would change with its
version) and nothing is downloaded. The same input bytes always give the same token file and the
same SHA-256, which the notebooks check before they read the data.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent
CORPUS = DATA_DIR / "corpus.txt"
TOKENS = DATA_DIR / "tokens.bin"
CHECKSUM = DATA_DIR / "tokens.sha256"
TOKEN_DTYPE = np.dtype("<u2")  # little-endian uint16 on every machine


def tokenize(text: bytes) -> np.ndarray:
    """Byte-level tokens of UTF-8 `text`: one uint16 per byte."""
    text.decode("utf-8")  # refuse anything that is not UTF-8 text
    return np.frombuffer(text, dtype=np.uint8).astype(TOKEN_DTYPE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not write")
    args = parser.parse_args(argv)

    # The raw bytes, exactly as committed: no newline translation on any OS.
    payload = tokenize(CORPUS.read_bytes()).tobytes()
    digest = hashlib.sha256(payload).hexdigest()
    # The sha256sum format, so `sha256sum -c tokens.sha256` works from inside data/.
    checksum_line = f"{digest}  {TOKENS.name}\n"

    if args.check:
        ok = (
            TOKENS.exists()
            and TOKENS.read_bytes() == payload
            and CHECKSUM.exists()
            and CHECKSUM.read_text() == checksum_line
        )
        print(f"{TOKENS.name}: {'up to date' if ok else 'STALE: run python data/make_tokens.py'}")
        return 0 if ok else 1

    TOKENS.write_bytes(payload)
    CHECKSUM.write_text(checksum_line)
    print(f"wrote {TOKENS.name}: {len(payload) // TOKEN_DTYPE.itemsize} tokens, "
          f"{len(payload)} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
