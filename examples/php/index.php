<?php
// The PHP app of the example, run by php-fpm for each Motan2 call of com.example.php.Hello.
// The call's first argument arrives as $_GET (REQUEST_METHOD GET): a map's entries, or a
// string as one key, next to requestIdFromClient. Attachments arrive as $_SERVER['MOTAN_<k>'].
$args = $_GET;
unset($args['requestIdFromClient']);
$name = $args['name'] ?? (count($args) === 1 ? array_key_first($args) : 'nobody');
if ($name === '') {
    header('Status: 400 Bad Request');
    echo 'name is required';
    return;
}
header('X-Greeted: ' . $name);
printf(
    "Hello, %s, from PHP %s (caller %s, request %s)",
    $name,
    PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION,
    $_SERVER['MOTAN_M_s'] ?? '?',
    $_GET['requestIdFromClient'] ?? '?'
);
