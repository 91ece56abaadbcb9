# A pure function: no providers, no resources. Its only output is the function app's
# settings, so tests/terraform can evaluate it offline and check it against the code.
terraform {
  required_version = ">= 1.9, < 2.0"
}
