"""Install spreid_tf; metadata and pins live in setup.cfg."""
from setuptools import setup

setup()
