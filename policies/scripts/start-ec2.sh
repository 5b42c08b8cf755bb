#!/bin/sh
# Starts one EC2 instance that runs a Halley worker joining the job's space.
# Gets HALLEY_JOIN (the peer to join), HALLEY_TOKEN (the job's secret) and
# HALLEY_RESOURCE (the class name); prints the instance id on stdout.
# Set HALLEY_AMI to an image with `halley` on its PATH.
set -eu
user_data=$(cat <<EOS
#!/bin/sh
printf '%s' '$HALLEY_TOKEN' > /run/halley.token
exec halley worker --peer '$HALLEY_JOIN' --resource '$HALLEY_RESOURCE' --token-file /run/halley.token
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
