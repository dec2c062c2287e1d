"""The seed's signing truth: the host, the timestamp and the three vectors of reqcrypt_test.go."""

HOST = "engine.mobileapptracking.com"
TS = "1406146778"
# The three truth vectors of the seed's reqcrypt_test.go.
TRUTH = [
    ("GET", {}, "ur3aUlwbRXGcxxt0EvDa2BQTqkCUjb4RdHww1S5EAWY"),
    ("POST", {"var1": "blue"}, "X5wxZPS_s5941_d_wnaUcS1Qgd1jZvu94jv5aImtaxo"),
    ("POST", {"var1": "blue", "meow": "+-=", "alpha": "beta"}, "_2fqNArAgJO3vvtE0ff3XZ3mYSsnIbu5Ynkaw-S-o-c"),
]
