import multiprocessing
from multiprocessing import Pool


def square(x):
    return x * x


def collect(result):
    print(result)


def fan_out(values):
    multiprocessing.Pool(2).apply_async(square, (3,), callback=collect)
    with Pool(2) as pool:
        for value in values:
            pool.apply_async(square, (value,), callback=collect, error_callback=collect)
