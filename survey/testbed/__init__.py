"""The simulated mail Internet on loopback: world model, generator, servers, ground truth.

See docs/design.md "The testbed and its truth"; ``model`` documents the behaviour
vocabulary and the ``spec.json`` form.
"""
