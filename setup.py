from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]


setup(
    name='mmspike',
    version='0.1.0',
    description='Spiking neural networks for OpenMMLab: E-SpikeFormer, SpikeYOLO, SSC',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    package_data={'mmspike.classification.datasets': ['*.txt', '*.md']},
    python_requires='>=3.9',
    install_requires=read_requirements('requirements/runtime.txt'),
    # spconv is an extra: the CPU build (mmspike[spconv]) and spconv-cuXY share an import name
    extras_require={'tests': read_requirements('requirements/tests.txt'),
                    'spconv': read_requirements('requirements/spconv.txt')},
    license='Apache-2.0',
)
