"""Type stubs of the native module ``octet._octet`` (bindings/python/src/). Use the Python API
(``octet.Embedder``, ``octet.convert``) rather than this module directly."""

import os
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

def kernels() -> str:
    """The instruction set level and the kernels this CPU runs."""

class Engine:
    """One opened ``.octet`` model (``octet.Embedder`` wraps it)."""

    def __init__(self, path: Union[str, os.PathLike[str]], threads: Optional[int] = None) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def dims(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def prompts(self) -> Dict[str, str]: ...
    @property
    def default_prompt_name(self) -> Optional[str]: ...
    @property
    def matryoshka_dims(self) -> List[int]: ...
    @property
    def recipe(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def threads(self) -> int: ...
    def embed(
        self,
        texts: Iterable[str],
        batch_size: int = 32,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        dims: Optional[int] = None,
        normalize: Optional[bool] = None,
    ) -> npt.NDArray[np.float32]:
        """Embeds ``texts`` into a new float32 array (len(texts), dims), GIL released."""
    def tokenize(self, texts: Iterable[str], prompt_name: Optional[str] = None) -> List[List[int]]: ...
    def count_tokens(
        self, texts: Iterable[str], prompt_name: Optional[str] = None
    ) -> Tuple[List[int], List[bool]]: ...

def convert(
    source: str,
    output: Optional[str] = None,
    quant: Optional[str] = None,
    keep: List[str] = ...,
    report: bool = False,
    tokenizer: Optional[str] = None,
    threads: int = 0,
    tflite_exact: bool = False,
) -> Union[Dict[str, object], str]:
    """``octet convert``: a dict describing the file written, or the report as JSON text."""
