"""``python -m waveglow.evaluate --checkpoint CKPT FILELIST [--output DIR]``: see ``evaluation.main``."""

from .evaluation import main

if __name__ == "__main__":
    raise SystemExit(main())
