from setuptools import setup

setup(
    name="proj",
    install_requires=["django-celery-email>=3", "requests"],
    extras_require={"progress": ["celery-progress"]},
)
