#!/bin/sh
# Starts one EC2 instance that runs a Halley worker joining the job's space.
# Gets HALLEY_JOIN (the peer to join), HALLEY_TOKEN (the job's capability,
# hcap1-…, or its key: 64 hex digits; empty when the space is not private),
# HALLEY_RESOURCE (the class name), HALLEY_MACHINE (the manager's id for the
# machine, which the worker reports) and HALLEY_SLOTS (the class's slots);
# prints the instance id. The instance terminates itself when its worker
# ends (--instance-initiated-shutdown-behavior terminate).
# Set HALLEY_AMI to an image with `halley` on its PATH. The job must listen
# where the instance reaches it: `halley run --listen /ip4/0.0.0.0/tcp/7000
# --advertise /ip4/<public ip>/tcp/7000`.
set -eu
token_flag=
if [ -n "$HALLEY_TOKEN" ]; then
  token_flag="--token-file /run/halley.token"
fi
user_data=$(cat <<EOS
#!/bin/sh
umask 077
printf '%s\n' '$HALLEY_TOKEN' > /run/halley.token
halley worker --peer '$HALLEY_JOIN' --resource '$HALLEY_RESOURCE' \
  --id '$HALLEY_MACHINE' --slots '$HALLEY_SLOTS' $token_flag
# The worker ends when told to stop, or when the job's space goes away
# (a submitter killed with SIGKILL cannot run stop-ec2.sh): either way
# the instance is no longer needed, and shutting down terminates it.
shutdown -h now
EOS
)
aws ec2 run-instances \
  --image-id "${HALLEY_AMI:?set HALLEY_AMI}" \
  --instance-type c7g.large \
  --count 1 \
  --instance-initiated-shutdown-behavior terminate \
  --tag-specifications "ResourceType=instance,Tags=[{Key=halley-resource,Value=$HALLEY_RESOURCE}]" \
  --user-data "$user_data" \
  --query 'Instances[0].InstanceId' --output text
