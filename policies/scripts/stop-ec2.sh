#!/bin/sh
# Terminates the instance named by HALLEY_ID (printed by start-ec2.sh).
set -eu
aws ec2 terminate-instances --instance-ids "$HALLEY_ID" --output text >/dev/null
