"""CK data: read and validate CSV files into an immutable `Dataset`, and write them back.

This subpackage is the only place where carkin reads or writes tables with pandas; everything downstream
works on the arrays of `Dataset`.
"""

from ._dataset import Dataset as Dataset, FlatObservations as FlatObservations
from ._read import (
    data_hash as data_hash,
    load_dataset as load_dataset,
    read_ck as read_ck,
    read_covariates as read_covariates,
)
from ._write import write_ck as write_ck, write_covariates as write_covariates
