"""The simulated mail Internet on loopback: world model, generator, servers, ground truth.

See shared DESIGN.md "The testbed"; ``model`` documents the behaviour
vocabulary and the ``spec.json`` form.
"""
